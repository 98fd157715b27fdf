"""Scenario 01, the forgotten cancellation: a handler gives up, the child it started never exits.

The article's Go handler starts a goroutine that computes a result and sends it on an unbuffered
channel; when the request's context is cancelled the handler returns, and nobody ever receives.
Here a handler starts a child task that hands its result over and waits until the handler has taken
it; when the handler gives up (its client cancels, or its deadline passes) the child waits forever,
holding its result. The thread flavour is the same leak with a thread, which nothing can cancel.

Time is compressed: a millisecond here stands for a second in the article.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import queue
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from .._census import Census, task_done
from .._i18n import _
from . import _truth
from ._checks import exception_name

# Python's own export list (`import *`); the grader gives an answer cell ANSWER_NAMES, at the end.
__all__ = ["PAYLOAD_BYTES", "Request", "Result", "background_tasks", "slow_query"]

PAYLOAD_BYTES = 64 * 1024  # DO NOT CHANGE: what each query's result holds in memory

# Completion order of queries and handlers, to tell "the handler gave up first" without a clock.
_sequence = itertools.count()


@dataclass(frozen=True, eq=False)
class Result:
    """What the downstream query returns: the rows for one request."""

    request_id: int
    rows: bytes = field(repr=False)


# A query whose client gives up answers only once the client has seen its handler end, as in the
# article; a handler that waits for the query anyway is released after this long, and caught.
_LATE_ANSWER_LIMIT_S = 2.0


@dataclass(eq=False)
class Request:
    """One request. Its handler must give up after `deadline_ms`, or when its client cancels it."""

    id: int
    work_ms: float = 30.0
    deadline_ms: float = 1000.0


@dataclass(eq=False)
class Witness:
    """What the client and `slow_query` know of one request, kept off the request: an answer holds the
    request, and could rewrite fields on it ("the query ran once") or wait on the client's own signals.
    It is the grader's: an answer's code that asks `witness()` for it is noted (`_truth`), and its run
    ends as tampered."""

    answers_late: bool = False  # the client gives up: its query answers only once the client has gone
    client_gone: asyncio.Event = field(default_factory=asyncio.Event)
    query_started: asyncio.Event = field(default_factory=asyncio.Event)
    queries: int = 0
    running: int = 0  # queries started and not yet ended (returned, failed or cancelled)
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever none is running
    result: weakref.ref[Result] | None = None  # weak: judging must not keep rows alive
    query_done_at: int | None = None
    lateness: _Lateness | None = None  # the client's watch on when its handler ends


def _registry() -> Callable[[Request], Witness]:
    witnesses: weakref.WeakKeyDictionary[Request, Witness] = weakref.WeakKeyDictionary()

    def witness(request: Request) -> Witness:
        """What the query saw of `request` (nothing yet, if it never ran). The grader's: leaklab's own code
        may ask; a read from anywhere else (an answer waiting on the client's signals) is noted."""
        caller = sys._getframe(1)
        if not _truth.runs_own_code(caller, "leaklab."):
            _truth.note(__name__, "witness", caller)
        return witnesses.setdefault(request, Witness())

    return witness


witness = _registry()  # the witnesses are held in its closure, not in a module attribute an answer could read


def new_request(number: int, *, work_ms: float, deadline_ms: float, gives_up: bool) -> Request:
    """A request its client will serve; one that `gives_up` has its query answer only once the client has
    gone (that is the story), which makes "did the handler wait for the query?" a question of order."""
    request = Request(number, work_ms=work_ms, deadline_ms=deadline_ms)
    witness(request).answers_late = gives_up
    return request


async def slow_query(request: Request) -> Result:
    """The slow downstream call (a database, another service): `work_ms` long, 64 KiB of rows.

    For a request that gives up, the rows arrive after its client has gone (`new_request`).
    """
    seen = witness(request)
    seen.queries += 1
    seen.running += 1
    seen.idle.clear()
    seen.query_started.set()
    if seen.lateness is not None:
        seen.lateness.tell(seen.lateness.query_started)
    try:
        await asyncio.sleep(request.work_ms / 1000)
        if seen.answers_late:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_LATE_ANSWER_LIMIT_S):
                    await seen.client_gone.wait()
    finally:
        seen.running -= 1
        if not seen.running:
            seen.idle.set()
    result = Result(request.id, bytes(PAYLOAD_BYTES))
    seen.result = weakref.ref(result)
    seen.query_done_at = next(_sequence)
    if seen.lateness is not None:
        seen.lateness.tell(seen.lateness.query_ended)
    return result


# The asyncio docs' advice: keep a reference to every background task, or the garbage collector may
# destroy it mid-flight. A task that never ends therefore stays in this set, and so does its memory.
background_tasks: set[asyncio.Task] = set()


async def leaky_handle_request(request: Request) -> Result:
    """Serve a request through a child task; leaks the child when the handler gives up."""
    reply: asyncio.Queue[Result] = asyncio.Queue(maxsize=1)

    async def run_query() -> None:
        await reply.put(await slow_query(request))
        await reply.join()  # like Go's unbuffered send: wait until the handler has taken it

    child = asyncio.create_task(run_query())
    background_tasks.add(child)
    child.add_done_callback(background_tasks.discard)
    async with asyncio.timeout(request.deadline_ms / 1000):
        result = await reply.get()
    reply.task_done()
    return result


def blocking_query(request: Request) -> Result:
    """The same downstream call for a thread: blocks for `work_ms`, returns 64 KiB of rows."""
    time.sleep(request.work_ms / 1000)
    return Result(request.id, bytes(PAYLOAD_BYTES))


def leaky_handle_request_in_thread(request: Request) -> Result:
    """The thread flavour: the handler stops waiting at its deadline; the thread waits forever."""
    reply: queue.Queue[Result] = queue.Queue(maxsize=1)

    def run_query() -> None:
        reply.put(blocking_query(request))
        reply.join()  # nobody will ever call task_done(): this thread never ends

    threading.Thread(target=run_query, name=f"query-{request.id}", daemon=True).start()
    result = reply.get(timeout=request.deadline_ms / 1000)  # raises queue.Empty at the deadline
    reply.task_done()
    return result


def fixed_handle_request_in_thread(request: Request) -> Result:
    """The article's fix, for a thread: a buffer of one and a send that never blocks."""
    reply: queue.Queue[Result] = queue.Queue(maxsize=1)

    def run_query() -> None:
        reply.put_nowait(blocking_query(request))  # the buffer always has room: the thread ends

    threading.Thread(target=run_query, name=f"query-{request.id}", daemon=True).start()
    return reply.get(timeout=request.deadline_ms / 1000)


# --- the traffic: a burst of requests, some of which give up ---------------------------------------

Handler = Callable[[Request], Awaitable[Result]]


@dataclass
class Outcome:
    """How one request ended, as its client saw it, judged against the lesson's specification."""

    request: Request
    kind: str  # "complete", "cancel" (the client cancels) or "deadline" (the handler must time out)
    ended_with: str  # "result", "CancelledError", "TimeoutError", or another exception's name
    as_specified: bool = True  # the query's own result, or the specified exception
    query_once: bool = True  # the handler ran the query, once
    prompt: bool = True  # a handler that gave up did so at once: not after the query, nor well after its deadline
    problem: str = ""
    issues: dict[str, list[str]] = field(default_factory=dict)  # graded property -> what went wrong for it

    @property
    def correct(self) -> bool:
        """Everything the lesson asks of one request."""
        return self.as_specified and self.query_once and self.prompt

    def fails(self, graded: str, problem: str) -> None:
        """Note a problem of this request under the graded property it fails."""
        self.issues.setdefault(graded, []).append(problem)


@dataclass
class Burst:
    """The outcomes of a burst, with the first problems found."""

    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, kind: str, *, correct: bool = True) -> int:
        """How many requests of a kind ended correctly (or not)."""
        return sum(o.kind == kind and o.correct == correct for o in self.outcomes)

    @property
    def problems(self) -> list[str]:
        """What went wrong, one line per request that did not end as specified."""
        return [
            _("request {id} ({kind}): {problem}", id=o.request.id, kind=o.kind, problem=o.problem)
            for o in self.outcomes
            if not o.correct
        ]

    def problems_of(self, graded: str, first: int = 3) -> list[str]:
        """The first requests that failed one graded property, each with only that property's problems, as
        a grader's problem lines ("<property with spaces>: ..."): a test's message shows its own."""
        failed = [o for o in self.outcomes if o.issues.get(graded)][:first]
        return [
            graded.replace("_", " ")
            + ": "
            + _("request {id} ({kind}): {problem}", id=o.request.id, kind=o.kind, problem="; ".join(o.issues[graded]))
            for o in failed
        ]


def plan(
    requests: int,
    *,
    give_up_every: int = 2,
    give_up: tuple[str, ...] = ("cancel", "deadline"),
    work_ms: float = 30.0,
    deadline_ms: float = 5.0,
    long_deadline_ms: float | None = None,
) -> list[tuple[Request, str]]:
    """A burst's requests: one in every `give_up_every` gives up, by each way in `give_up` in turn; with
    `long_deadline_ms`, every other request that times out has that deadline (long enough that a handler
    giving up before it shows, short enough that the query is still running)."""
    ways = itertools.cycle(give_up)
    deadlines = itertools.cycle((deadline_ms, long_deadline_ms or deadline_ms))
    planned = []
    for i in range(requests):
        kind = next(ways) if i % give_up_every == give_up_every - 1 else "complete"
        deadline = next(deadlines) if kind == "deadline" else 1000.0
        planned.append((new_request(i, work_ms=work_ms, deadline_ms=deadline, gives_up=kind != "complete"), kind))
    return planned


# How late a handler may end, on the loop's clock: after its deadline (counted from the later of its first
# step and the turn of the loop after its query's start: a right handler sets its timer by then) or its
# client's cancellation, or after its query ended, for one that completes. Past that it still gets
# `_TURNS_AFTER` turns of the loop to finish what it does on the way out (a timer of its own that fired
# first always has: timers fire in order), so that load, which delays the loop's turns, never makes a
# right handler late. A handler still running after both is judged late.
_LATE_AFTER_DEADLINE_S = 0.025
_LATE_AFTER_QUERY_S = 0.25
_TURNS_AFTER = 50


class _Lateness:
    """The client's watch on when its handler ends: a timer the loop fires once the handler should have
    ended, then a count of the loop's turns; the handler is late if it is still running after both."""

    def __init__(self, loop: asyncio.AbstractEventLoop, serving: asyncio.Future, deadline_s: float, kind: str) -> None:
        # Not the request: its witness holds this, and a witness that held its request would keep it alive.
        self.loop, self.serving, self.deadline_s, self.kind = loop, serving, deadline_s, kind
        self.first_step_at: float | None = None
        self.query_started_at: float | None = None
        self.due: float | None = None  # when the handler should have ended, on the loop's clock
        self.handle: asyncio.Handle | None = None
        self.late = False
        self.thread = threading.get_ident()  # the loop's

    def tell(self, event: Callable[[], None]) -> None:
        """Tell it of the query's `event` at the loop's next turn (after whatever the handler does in this one),
        on the loop's own thread (an answer may run the query elsewhere)."""
        if threading.get_ident() == self.thread:
            self.loop.call_soon(event)
        else:
            self.loop.call_soon_threadsafe(event)

    def first_step_done(self) -> None:
        """Called right after the handler's first step (scheduled just behind it)."""
        self.first_step_at = self.loop.time()
        self._arm_deadline()

    def query_started(self) -> None:
        if self.query_started_at is None:
            self.query_started_at = self.loop.time()
            self._arm_deadline()

    def query_ended(self) -> None:
        if self.kind == "complete" and self.handle is None:
            self._arm(self.loop.time(), _LATE_AFTER_QUERY_S)

    def cancelled(self) -> None:
        """Called as the client cancels the handler."""
        self._arm(self.loop.time(), _LATE_AFTER_DEADLINE_S)

    def _arm(self, due: float, margin_s: float) -> None:
        if self.serving is None:  # the handler has ended already
            return
        self.due = due
        self.handle = self.loop.call_at(due + margin_s, self._turn, _TURNS_AFTER)

    def _arm_deadline(self) -> None:
        if self.kind != "deadline" or self.handle is not None:
            return
        if self.first_step_at is not None and self.query_started_at is not None:
            self._arm(max(self.first_step_at, self.query_started_at) + self.deadline_s, _LATE_AFTER_DEADLINE_S)

    def _turn(self, left: int) -> None:
        if task_done(self.serving):
            return
        if left:
            self.handle = self.loop.call_soon(self._turn, left - 1)
        else:
            self.late = True

    def stop(self) -> float:
        """Stop watching (the handler has ended); how long after it was due it ended, in ms."""
        if self.handle is not None:
            self.handle.cancel()
        self.serving = None  # type: ignore[assignment]  # what it returned is the client's to keep or drop
        return 0.0 if self.due is None else (self.loop.time() - self.due) * 1000


async def _client(handler: Handler, request: Request, kind: str) -> Outcome:
    loop = asyncio.get_running_loop()
    called_at = loop.time()  # before the handler is called: a slow loop only makes its time look longer
    serving = asyncio.ensure_future(handler(request))
    lateness = witness(request).lateness = _Lateness(loop, serving, request.deadline_ms / 1000, kind)
    loop.call_soon(lateness.first_step_done)  # runs right after the handler's first step
    if kind == "cancel":  # the client hangs up once the handler is busy with the query
        started = asyncio.ensure_future(witness(request).query_started.wait())
        await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        serving.cancel()
        lateness.cancelled()
    response: object = None
    try:
        response = await serving
        ended_with = "result"
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():  # type: ignore[union-attr] - the client itself is being cancelled
            raise
        ended_with = "CancelledError"
    except Exception as exc:
        ended_with = exception_name(exc)
    # The handler's task holds its exception, whose traceback holds this frame, which holds the task: a
    # cycle that would keep the handler's frames (and a result in them) until the collector runs.
    del serving
    late_ms = lateness.stop()
    outcome = _judge(request, kind, ended_with, response, next(_sequence), loop.time() - called_at)
    if lateness.late:
        _judge_late(outcome, late_ms)
    witness(request).client_gone.set()
    return outcome


def _judge(
    request: Request, kind: str, ended_with: str, response: object, finished_at: int, waited_s: float
) -> Outcome:
    expected = {"complete": "result", "cancel": "CancelledError", "deadline": "TimeoutError"}[kind]
    outcome, seen = Outcome(request, kind, ended_with), witness(request)
    specified = "completed_with_result" if kind == "complete" else "gave_up_as_specified"
    if ended_with != expected:
        outcome.as_specified = False
        outcome.fails(
            specified, _("ended with {ended_with}, expected {expected}", ended_with=ended_with, expected=expected)
        )
    elif kind == "complete" and (seen.result is None or response is not seen.result()):
        outcome.as_specified = False
        outcome.fails(specified, _("returned something other than the query's own result"))
    elif kind == "deadline" and (took_ms := waited_s * 1000) < request.deadline_ms:  # load only makes it later
        outcome.as_specified = False
        outcome.fails(
            specified,
            _(
                "TimeoutError after {took:.0f} ms, before its deadline of {deadline:g} ms",
                took=took_ms,
                deadline=request.deadline_ms,
            ),
        )
    if seen.queries != 1:
        outcome.query_once = False
        outcome.fails("query_ran_once", _("the query ran {queries} times, expected once", queries=seen.queries))
    if kind != "complete" and seen.query_done_at is not None and seen.query_done_at < finished_at:
        outcome.prompt = False
        outcome.fails(
            "gave_up_promptly", _("the handler gave up only after the query had finished: it kept its caller waiting")
        )
    outcome.problem = "; ".join(p for issues in outcome.issues.values() for p in issues)
    return outcome


def _judge_late(outcome: Outcome, late_ms: float) -> None:
    """A handler still running once it should have ended (`_Lateness`): a request that completed was
    answered late (its result was there), one past its deadline or cancelled gave up late."""
    if outcome.kind == "complete":
        outcome.as_specified = False
        outcome.fails(
            "completed_with_result",
            _("returned the query's result {late:.0f} ms after the query had ended, not when it ended", late=late_ms),
        )
    elif outcome.prompt:  # one that waited for the query is told so already
        outcome.prompt = False
        outcome.fails(
            "gave_up_promptly",
            _("ended {late:.0f} ms after its client had cancelled it, not at once", late=late_ms)
            if outcome.kind == "cancel"
            else _(
                "ended {late:.0f} ms after its deadline of {deadline:g} ms had passed, not at once",
                late=late_ms,
                deadline=outcome.request.deadline_ms,
            ),
        )
    outcome.problem = "; ".join(p for issues in outcome.issues.values() for p in issues)


async def serve_burst(
    handler: Handler,
    requests: int = 200,
    *,
    interval_ms: float = 1.0,
    into: Burst | None = None,
    rows: list[list] | None = None,
    **plan_options: float,
) -> Burst:
    """Send `requests` requests, one every `interval_ms`, and wait until every client has its answer;
    or send `rows` (drawn traffic: `[kind, work_ms, deadline_ms, gap_ms]` each).

    Outcomes are added to `into` as they arrive, so a burst whose handler hangs can still be judged.
    """
    burst = into if into is not None else Burst()

    async def client(request: Request, kind: str) -> None:
        burst.outcomes.append(await _client(handler, request, kind))

    if rows is None:
        planned = [(request, kind, interval_ms) for request, kind in plan(requests, **plan_options)]  # type: ignore[arg-type]
    else:
        planned = [(_drawn_request(i, *row[1:3], kind=row[0]), row[0], row[3]) for i, row in enumerate(rows)]
    clients = []
    for request, kind, gap_ms in planned:
        clients.append(asyncio.ensure_future(client(request, kind)))
        await asyncio.sleep(gap_ms / 1000)
    await asyncio.gather(*clients)
    return burst


@dataclass(frozen=True)
class Tally:
    """What the notebook prints of a burst: counts and the first problems, not the requests themselves
    (a record per request, kept to the end of a recording, would show as heap still held)."""

    requests: int
    completed: int  # requests that completed with the query's own result
    cancelled: int  # requests cancelled by their client that ended with CancelledError, at once
    timed_out: int  # requests past their deadline that ended with TimeoutError, at once
    unanswered: int  # requests still waiting for their handler when the burst was stopped
    left_alive: int  # tasks the burst started that were still pending once every query had finished
    problems: tuple[str, ...]

    @property
    def gave_up(self) -> int:
        """Requests that gave up as specified, either way."""
        return self.cancelled + self.timed_out


async def serve_and_settle(
    handler: Handler, requests: int = 160, *, settle_ms: float = 50.0, limit_s: float = 5.0
) -> Tally:
    """The notebook's burst: serve it, give every query time to finish, and keep only a `Tally`.

    Measured in the grader's order. First the tasks: whatever is still pending after `settle_ms` was left
    behind by the handler. Then the memory: the burst's own records are dropped and the cyclic garbage
    collector runs (an exception's traceback holds the frames it left, in a loop that only the collector
    frees), and the recorder gets a moment to sample the heap, so the memory a recording shows at its end
    is what the handler still holds. A handler that never answers is stopped after `limit_s`. Raises
    NotImplementedError for the exercise's stub.
    """
    census = Census.take()  # as the recorder counts: asyncio's own registry, the kernel's tasks left out
    burst = Burst()
    try:
        async with asyncio.timeout(limit_s):
            await serve_burst(handler, requests, into=burst)
    except TimeoutError:
        pass  # the requests without an outcome are counted as unanswered
    await asyncio.sleep(settle_ms / 1000)
    if any(o.ended_with == "NotImplementedError" for o in burst.outcomes):
        raise NotImplementedError(_("handle_request is still the exercise's stub"))
    tally = Tally(
        requests=requests,
        completed=burst.count("complete"),
        cancelled=burst.count("cancel"),
        timed_out=burst.count("deadline"),
        unanswered=requests - len(burst.outcomes),
        left_alive=len(census.new_tasks()),
        problems=tuple(burst.problems[:5]),
    )
    del burst
    gc.collect()  # what it frees was garbage, not held; a pending task nothing references is destroyed
    await asyncio.sleep(0.015)  # memray samples the heap every 5 ms: one sample without the records
    return tally


def _drawn_request(number: int, work_ms: float, deadline_ms: float, *, kind: str) -> Request:
    return new_request(number, work_ms=work_ms, deadline_ms=deadline_ms, gives_up=kind != "complete")


_KINDS = ("complete", "cancel", "deadline")


def traffic(seed: int, *, requests: int = 40) -> dict:
    """A hidden burst drawn by Hypothesis (leaklab.scenarios._traffic): `requests` requests in any order
    of the three ways a request ends, at least a sixth each; queries of 20-150 ms, deadlines of 2-60 ms
    for those that time out (their query answers after the client has gone, whatever the load; a handler
    that gives up before the deadline shows), and 0-2 ms between arrivals. One of those that time out has a
    long deadline, 1-3 s, and a query longer still: a handler that enforces only short deadlines waits for it."""
    from hypothesis import strategies as st

    from ._traffic import draw

    row = st.tuples(st.sampled_from(_KINDS), st.integers(20, 150), st.integers(2, 60), st.sampled_from((0, 0, 1, 2)))
    long = st.tuples(st.integers(1000, 3000), st.integers(20, 150), st.integers(0, requests - 1))
    rows, (long_ms, longer_by, place) = draw(
        st.tuples(st.lists(row, min_size=requests - 1, max_size=requests - 1), long),
        seed,
        lambda drawn: all(sum(r[0] == kind for r in drawn[0]) >= requests // 6 for kind in _KINDS),
    )
    drawn = [[kind, work, deadline if kind == "deadline" else 1000, gap] for kind, work, deadline, gap in rows]
    drawn.insert(place, ["deadline", long_ms + longer_by, long_ms, 0])
    return {"rows": drawn}


def serve_in_threads(handler: Callable[[Request], Result], requests: int = 40, **plan_options: float) -> Burst:
    """Serve requests one after another with a thread-flavour handler; one in two times out."""
    burst = Burst()
    for request, kind in plan(requests, give_up=("deadline",), **plan_options):  # type: ignore[arg-type]
        try:
            response: Result | None = handler(request)
        except queue.Empty:
            response = None
        ended_with = "result" if response is not None else "TimeoutError"
        correct = ended_with == ("result" if kind == "complete" else "TimeoutError")
        burst.outcomes.append(
            Outcome(
                request,
                kind,
                ended_with,
                correct,
                problem="" if correct else _("ended with {ended_with}", ended_with=ended_with),
            )
        )
    return burst


async def leaky_rounds(rounds: int = 10) -> AsyncIterator[str]:
    """The leak for `leaklab run`: the leaky handler under one burst of 40 requests per round."""
    for _round in range(rounds):
        burst = await serve_burst(leaky_handle_request, requests=40)
        await asyncio.sleep(0.01)  # the children of completed requests take a few more loop turns to end
        gave_up = burst.count("cancel") + burst.count("deadline")
        yield _("{requests} requests, {gave_up} gave up", requests=len(burst.outcomes), gave_up=gave_up)


# --- grading: what a fresh process runs against the learner's handler -------------------------------


# The graded properties, in the order the test cells name them; each test's message shows its own problems.
_GRADED = ("completed_with_result", "gave_up_as_specified", "query_ran_once", "gave_up_promptly")


def probe(
    handler: Handler, *, requests: int = 40, rows: list[list] | None = None, **plan_options: float
) -> tuple[Awaitable[object], Callable[[], dict]]:
    """The burst a grader runs against a handler (a planned one, or drawn `rows`: see `traffic`), and a
    summary of it that can be read at any time."""
    burst = Burst()
    requests = len(rows) if rows is not None else requests
    planned = {"work_ms": 100.0, "deadline_ms": 5.0, "long_deadline_ms": 60.0}
    options = {**planned, **plan_options} if rows is None else {"rows": rows}

    def summary() -> dict:
        """Counts as [passed, out of] per property, plus the first problems."""
        gave_up = [o for o in burst.outcomes if o.kind != "complete"]
        completed = [o for o in burst.outcomes if o.kind == "complete"]
        return {
            "requests": requests,
            "answered": len(burst.outcomes),
            "completed_with_result": [sum(o.as_specified for o in completed), len(completed)],
            "gave_up_as_specified": [sum(o.as_specified for o in gave_up), len(gave_up)],
            "query_ran_once": [sum(o.query_once for o in burst.outcomes), len(burst.outcomes)],
            "gave_up_promptly": [sum(o.prompt for o in gave_up), len(gave_up)],
            "problems": [line for graded in _GRADED for line in burst.problems_of(graded)],
        }

    return _settled(serve_burst(handler, requests, interval_ms=0.0, into=burst, **options)), summary


# The grader counts what is left when the probe's burst ends (grading.child), not when the loop goes quiet.
LEFTOVERS_AT_BURST_END = True
# Once every query of a burst has ended, a right answer's child ends within a few turns of the loop, with
# no timer of its own to wait for: a task still pending this long after was left behind.
_SETTLE_AFTER_QUERIES_S = 0.1


async def _settled(serving: Awaitable[Burst]) -> Burst:
    """The burst, over once every client has its answer, every query has ended and the loop has settled."""
    burst = await serving
    for seen in [witness(o.request) for o in burst.outcomes]:
        if seen.running:
            await seen.idle.wait()
    await asyncio.sleep(_SETTLE_AFTER_QUERIES_S)
    return burst


def warm_up(handler: Handler) -> tuple[Awaitable[object], Callable[[], dict]]:
    """Two requests that complete, so that first-use allocations are not counted as retained; judged with
    the burst's (a handler's first call is a call like any other)."""
    return probe(handler, requests=2, give_up_every=10**9)


# The scenario contract (leaklab.scenarios): the names an answer cell may use besides `asyncio`.
ANSWER = "handle_request"  # the name the task has the answer cell bind, whatever object it binds there
ANSWER_NAMES = ("PAYLOAD_BYTES", "Request", "Result", "background_tasks", "slow_query")
