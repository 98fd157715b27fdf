"""Scenario 08, a week in production: one service, four of the earlier leaks, seven simulated days.

The article opens with a service of a million requests a day that grew from 200 MB to 2 GB in a week and
had to be restarted often; it does not say what leaked. This lesson's own service leaks from four places
at once, the leaks of lessons 01 to 04: a handler's child blocked on a hand-over nobody takes, a retry
loop deaf to its stop signal, a call with no deadline to a service that sometimes never answers, and
workers started for each batch and never stopped. `LeakyService` carries them, built from the earlier
lessons' pieces (its own comments do not name them: the lesson's learner finds them with the dump), and
`replay_week` sends it a week of mixed traffic (days of a few rounds, milliseconds for hours) while a
small daily gauge counts its live tasks and threads, and raises an alert over a threshold.

Time is compressed: a simulated day lasts a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import queue
import random
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import thread as _executor_threads
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .._census import (
    Census,
    alive_threads,
    foreign_threads,
    os_threads,
    process_parents,
    task_done,
    task_loop,
    thread_alive,
)
from .._i18n import _, ngettext
from .._stacks import counted
from . import lifeless_pool
from ._checks import CONDITION_WAIT, exception_name
from ._truth import graders_truth, guard_source, note
from .forgotten_cancel import PAYLOAD_BYTES, Request, Result, new_request, slow_query, witness
from .hung_call import answered_keys, expected_answer, pick_key, start_service
from .skipped_stop import Dependency, DependencyError

# Python's own export list (`import *`); the grader gives an answer cell ANSWER_NAMES, at the end.
__all__ = [
    "BUFFER_BYTES",
    "PAYLOAD_BYTES",
    "DependencyError",
    "LeakyService",
    "Lookup",
    "Request",
    "Result",
    "handle",
    "queue",
    "slow_query",
    "threading",
    "time",
]

BUFFER_BYTES = 128 * 1024  # DO NOT CHANGE: the working memory of each background thread (flusher, batch worker)
WORKING_SET_BYTES = 1280 * 1024  # DO NOT CHANGE: what the service holds at rest (its caches): the story's 200 MB
WORKERS_PER_BATCH = 4  # DO NOT CHANGE: how many threads a batch is spread over

# The measuring tools, bound when this module is imported, before any answer cell runs.
_all_tasks, _listdir, _monotonic = asyncio.all_tasks, os.listdir, time.monotonic
_getpid, _native_id = os.getpid, threading.get_native_id
_all_objects, _TASK_TYPES = gc.get_objects, (asyncio.Task, asyncio.tasks._PyTask)  # type: ignore[attr-defined]
_current_frames, _IDLE_WORKER = sys._current_frames, _executor_threads._worker.__code__  # type: ignore[attr-defined]
_handled = [0]  # how many jobs `handle` has done, to tell a batch that did its jobs from one that made up results
_watching: list[_Owners | None] = [None]  # the replay that watches which threads do a batch's jobs


# At most this many lookups the key-value service never answers are within their deadline at once: fewer than
# the threads of the smallest default executor (min(32, cores + 4): 5 on one core) and of a pool of four, so a
# right answer that runs its lookups on threads always has one free for those that are answered. More, and an
# answered lookup waits in the executor's queue behind hung ones until its own deadline has nearly gone, which
# the machine's load then decides (the hidden week held 77 in its queue at a 1.2 s deadline).
_STUCK_AT_ONCE = 3
_AT_REST_S = 0.015  # a pause after start(), before the traffic: longer than two of memray's snapshot intervals

# The plots' time axis: here a round of traffic, a few milliseconds, stands for half a day. In the language of
# the process that imports this module (a kernel's is its notebook's, and does not change).
WEEK_AXIS = _("time since the week began (ms; a round of traffic stands for half a day)")


def handle(job: int) -> int:
    """Do one batch job (lesson 04's: a millisecond of work, its square)."""
    _handled[0] += 1
    if (owners := _watching[0]) is None:
        return lifeless_pool.handle(job)
    owners.job_begins()
    try:
        return lifeless_pool.handle(job)
    finally:
        owners.job_ends()


@dataclass(frozen=True)
class Lookup:
    """A lookup in the key-value service: `key` to ask for; the answer must come within `deadline_ms`."""

    key: str
    deadline_ms: float = 2000.0

    def line(self) -> bytes:
        """The request as the key-value service reads it."""
        return f"GET {self.key}\n".encode()


def key_value_service() -> tuple[str, int]:
    """Start lesson 03's key-value service (it never answers some keys, and which is a secret) in a process of
    its own, and return its address; it ends when this process does, so stuck calls stay stuck until then."""
    return start_service()


class Sink(Dependency):
    """Where recorded events go (an analytics endpoint): lesson 02's dependency, counting what it got, and
    how soon a thread called again after a call it refused (the flusher's back-off, as the sink sees it)."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: dict[int, int] = {}
        self.refused = 0  # calls refused since the service last started
        self.closest_retry = float("inf")  # the least time (s) between two refused calls of a thread in one run
        self._refused_at: dict[threading.Thread, float] = {}  # when each thread's last refused call of this run came

    def new_run(self) -> None:
        """The service is about to start: its calls from now on are a new run's (a fresh flusher may try at
        once the event its predecessor put back)."""
        self.refused = 0
        self._refused_at.clear()

    def call(self, job: int) -> int:
        """Deliver one event, or raise DependencyError while the sink is down."""
        called, caller = _monotonic(), threading.current_thread()
        try:
            answer = super().call(job)
        except DependencyError:
            if (last := self._refused_at.get(caller)) is not None:  # (a busy machine only makes it longer)
                self.closest_retry = min(self.closest_retry, called - last)
            self.refused, self._refused_at[caller] = self.refused + 1, called
            raise
        self.delivered[job] = self.delivered.get(job, 0) + 1
        return answer


class LeakyService:
    """The service as it runs in production: five kinds of request and a background flusher.

    `start()` starts the flusher, which delivers recorded events to the sink; `stop()` stops it (the
    service is restarted at every config reload). `report`, `lookup`, `batch`, `record` and `status`
    serve requests.
    """

    def __init__(
        self,
        address: tuple[str, int],
        sink: Dependency,
        *,
        backoff_s: float = 0.02,
        working_set_bytes: int = WORKING_SET_BYTES,
    ) -> None:
        self.address = address  # the key-value service that `lookup` asks
        self.sink = sink  # where `record`ed events go; down for part of the week
        self.backoff_s = backoff_s  # how long the flusher waits before it tries a failed delivery again
        self.events: queue.Queue[int] = queue.Queue()  # recorded events not yet delivered; kept across restarts
        self.cache = bytearray(working_set_bytes)  # the service's memory at rest
        self.background: set[asyncio.Task] = set()  # children of `report`, kept as asyncio's docs advise
        self._stop = threading.Event()

    # --- lifecycle: the flusher -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the flusher thread."""
        self._stop = threading.Event()
        threading.Thread(target=self._flush, args=(self._stop,), name="flusher", daemon=True).start()

    def stop(self) -> None:
        """Tell the flusher to stop."""
        self._stop.set()

    def _flush(self, stop: threading.Event) -> None:
        buffer = bytearray(BUFFER_BYTES)  # working memory
        while not stop.is_set():
            try:
                event = self.events.get(timeout=0.01)
            except queue.Empty:
                continue
            while True:  # deliver it; while the sink fails, try again after a back-off
                try:
                    self.sink.call(event)
                    buffer[0] = event % 256
                    break
                except DependencyError:
                    time.sleep(self.backoff_s)

    # --- requests ---------------------------------------------------------------------------------------

    def record(self, event: int) -> None:
        """Queue an event for the sink: the flusher delivers it."""
        self.events.put(event)

    async def status(self) -> str:
        """The health check."""
        return "ok"

    async def report(self, request: Request) -> Result:
        """A report from the slow database: the query runs in a child task that hands its rows over;
        the handler waits for them until `request.deadline_ms`."""
        reply: asyncio.Queue[Result] = asyncio.Queue(maxsize=1)

        async def run_query() -> None:
            await reply.put(await slow_query(request))
            await reply.join()  # like Go's unbuffered send: the hand-over completes when the handler takes it

        child = asyncio.create_task(run_query())
        self.background.add(child)
        child.add_done_callback(self.background.discard)
        async with asyncio.timeout(request.deadline_ms / 1000):
            result = await reply.get()
        reply.task_done()
        return result

    async def lookup(self, lookup: Lookup) -> str:
        """A value from the key-value service."""
        reader, writer = await asyncio.open_connection(*self.address)
        writer.write(lookup.line())
        await writer.drain()
        answer = bytearray(PAYLOAD_BYTES)  # room for the answer
        line = await reader.readline()
        answer[: len(line)] = line
        writer.close()
        await writer.wait_closed()
        return line.decode().strip()

    def batch(self, jobs: list[int]) -> list[int]:
        """`handle(job)` for every job, in order, done by four threads started for this batch."""
        todo: queue.Queue[tuple[int, int]] = queue.Queue()
        done: queue.Queue[tuple[int, int]] = queue.Queue()

        def worker() -> None:
            buffer = bytearray(BUFFER_BYTES)  # working memory
            while True:
                index, job = todo.get()
                buffer[0] = job % 256
                done.put((index, handle(job)))

        for _worker in range(WORKERS_PER_BATCH):
            threading.Thread(target=worker, name="batch-worker", daemon=True).start()
        for item in enumerate(jobs):
            todo.put(item)
        results = dict(done.get() for _job in jobs)
        return [results[index] for index in range(len(jobs))]


# --- the monitor: a daily gauge of live tasks and threads ------------------------------------------


def _day_name(day: int) -> str:
    """Day `day` of the week (day 1 a Monday) as the gauge's log names it, in the learner's language."""
    # TRANSLATORS: the days of the week, short, as a log line starts with them ("Mon 23:59 gauge ...").
    names = (_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun"))
    return names[(day - 1) % 7]


@dataclass
class DailyGauge:
    """The service's own monitor: once a day, count its live tasks and threads; alert over a threshold."""

    threshold: int = 40  # live tasks + threads above which the on-call engineer is paged
    log: bool = True
    readings: list[tuple[int, int]] = field(default_factory=list)  # (tasks, threads), one per day
    alerts: list[int] = field(default_factory=list)  # the days on which it fired

    def sample(self, day: int, tasks: int, threads: int) -> None:
        """Note one day's count, and print it like a log line."""
        self.readings.append((tasks, threads))
        alert = tasks + threads > self.threshold
        if alert:
            self.alerts.append(day)
        if self.log:
            name = _day_name(day)
            # TRANSLATORS: a log line; live_tasks= and live_threads= are the gauge's names for its values.
            line = _(
                "{day} 23:59 gauge live_tasks={tasks} live_threads={threads}", day=name, tasks=tasks, threads=threads
            )
            if alert:
                line = _(
                    "{day} 23:59 gauge live_tasks={tasks} live_threads={threads}  ALERT: {total} > {threshold}",
                    day=name,
                    tasks=tasks,
                    threads=threads,
                    total=tasks + threads,
                    threshold=self.threshold,
                )
            print(line)


# --- the traffic ---------------------------------------------------------------------------------------

KINDS = ("report", "lookup", "batch", "events")
MIX = {"report": 6, "lookup": 3, "batch": 1, "events": 3, "status": 2}  # requests of each kind per round


@dataclass
class Served:
    """How one request ended, judged against the service's specification."""

    kind: str
    ended_with: str = "nothing"  # "result", an exception's name, or "nothing" (never answered)
    right: bool = False
    problem: str = field(default_factory=lambda: _("never answered"))
    key: str = ""  # the key of a lookup the service answers


@dataclass
class Week:
    """What a replay did: the requests and how they ended, the gauge, and what the service left."""

    served: list[Served] = field(default_factory=list)
    gauge: DailyGauge = field(default_factory=DailyGauge)
    day_ends: list[float] = field(default_factory=list)  # wall-clock time (epoch ms) at each gauge reading
    sink: Sink = field(default_factory=Sink)
    service: LeakyService | None = None
    up_events: list[int] = field(default_factory=list)  # events recorded while the sink was up
    recorded: list[int] = field(default_factory=list)  # every event record() took
    batch_problems: list[str] = field(default_factory=list)  # threads a batch left running
    stop_problems: list[str] = field(default_factory=list)  # threads stop() left running
    stops: list[float] = field(default_factory=list)  # how long each stop() took while the sink was down (s)
    taken_at_stop: list[int] = field(default_factory=list)  # events a held Queue.get handed over as stop() came
    lifecycle_problems: list[str] = field(default_factory=list)
    jammed: bool = False  # a lifecycle call never returned
    in_flight: set[asyncio.Task] = field(default_factory=set)  # requests not answered yet
    started_at: float = 0.0  # wall-clock time (epoch ms) once the service had started, before any traffic
    unclosed: int = 0  # connections the service never closed (asyncio closed them when their writers were freed)

    def count(self, kind: str) -> tuple[int, int]:
        """[right, out of] for one kind of request."""
        mine = [s for s in self.served if s.kind == kind]
        return sum(s.right for s in mine), len(mine)

    @property
    def problems(self) -> list[str]:
        """One line per request that did not end as specified."""
        return [f"{s.kind}: {s.problem}" for s in self.served if not s.right]


def _ended_with(task: asyncio.Task) -> str:
    if task.cancelled():
        return "CancelledError"
    return "result" if (exc := task.exception()) is None else exception_name(exc)


def _early(deadline_ms: float, started: float) -> str:
    """A TimeoutError that came before its deadline (a lower bound: a loaded machine only makes it later)."""
    took_ms = (_monotonic() - started) * 1000
    if took_ms >= deadline_ms:
        return ""
    return _(
        "TimeoutError after {took:.0f} ms, before its deadline of {deadline:g} ms", took=took_ms, deadline=deadline_ms
    )


# How a report's client ends it: it waits for the answer, lets the deadline pass, or cancels the handler.
_REPORT_ENDS = {"complete": "result", "deadline": "TimeoutError", "cancel": "CancelledError"}


def _judge_report(request: Request, kind: str, served: Served, started: float, task: asyncio.Task) -> None:
    served.ended_with, seen = _ended_with(task), witness(request)
    problems = []
    expected = _REPORT_ENDS[kind]
    if served.ended_with != expected:
        problems.append(
            _("ended with {ended_with}, expected {expected}", ended_with=served.ended_with, expected=expected)
        )
    elif kind == "deadline" and (early := _early(request.deadline_ms, started)):
        problems.append(early)
    elif kind == "complete" and (seen.result is None or task.result() is not seen.result()):
        problems.append(_("returned something other than the query's own result"))
    elif kind != "complete" and seen.query_done_at is not None:
        problems.append(_("gave up only after the query had finished: it kept its client waiting"))
    if seen.queries != 1:
        problems.append(_("the query ran {queries} times, expected once", queries=seen.queries))
    served.right, served.problem = not problems, "; ".join(problems)
    seen.client_gone.set()  # a query whose client gave up may answer now: too late


def _judge_lookup(
    lookup: Lookup, stuck: bool, answer: str, served: Served, started: float, task: asyncio.Task, *, cancelled: bool
) -> None:
    served.ended_with = _ended_with(task)
    expected = "TimeoutError" if stuck else "result"
    if cancelled and served.ended_with == "CancelledError":  # its client hung up before the deadline
        expected = "CancelledError"
    value = task.result() if served.ended_with == "result" else None
    if served.ended_with != expected:
        served.problem = _(
            "{key}: ended with {ended_with}, expected {expected}",
            key=lookup.key,
            ended_with=served.ended_with,
            expected=expected,
        )
    elif expected == "TimeoutError" and (early := _early(lookup.deadline_ms, started)):
        served.problem = f"{lookup.key}: {early}"
    elif not stuck and value != answer:
        served.problem = _(
            "{key}: answered {value!r}, not the key-value service's answer", key=lookup.key, value=str(value)[:40]
        )
    else:
        served.right, served.problem = True, ""


def _judge_status(served: Served, task: asyncio.Task) -> None:
    served.ended_with = _ended_with(task)
    served.right = served.ended_with == "result" and task.result() == "ok"
    served.problem = "" if served.right else _("ended with {ended_with}, expected 'ok'", ended_with=served.ended_with)


_START, _JOIN, _IS_ALIVE = (getattr(threading.Thread, name).__code__ for name in ("start", "join", "is_alive"))
_GET = queue.Queue.get.__code__  # what a flusher takes an event with (get_nowait, and a Queue subclass's get, call it)
_TAKE_HELD_S = 5.0  # how long at most an event taken is held for the stop() to come (close() lets it go sooner)
_STOP_UNSEEN_S = 0.1  # how long at most a stop() that waits where the hook cannot see (a bare lock) keeps it held
_BOOTSTRAP = threading.Thread._bootstrap_inner.__code__  # type: ignore[attr-defined]
_thread_alive = thread_alive  # threading's own is_alive, or the OS's: no flag an answer sets hides a thread


class _Owners:
    """Which of the service's calls (start, batch, stop) started each thread, and whether the call that
    should wait for it did.

    A trace hook notes every `Thread.start` made by the driver's thread during a call (or by a thread
    such a call started), and holds each such thread at its very end until somebody looks at it
    (`join()` or `is_alive()`) or the grader lets it go: so "was it still running when batch() or stop()
    returned?" is a question of order, not of how fast the machine is. A look lets the thread end, but
    only a look that saw it ended (a `join()` after which it is dead, an `is_alive()` that said False)
    counts as waiting for it: one `is_alive()` on the way out is not a wait.

    It also counts the threads a batch's jobs run on at once: those a batch has started that are alive at
    each `Thread.start` (held at their end, they stay alive until waited for), and those in `handle()`
    together. With `hold_s`, a batch's `handle()` calls (but in batch()'s own thread) wait until batch()
    itself waits (in a join, or a Condition's wait: a Queue's, a Future's, an Event's), or at most `hold_s`
    after batch() was called: no job ends before the batch has dispatched, so a pool cannot reuse a worker
    that would have been idle on a fast machine, and shows every thread it starts.

    A thread started outside `threading` (`_thread.start_new_thread`) passes by the hook: no `Thread.start`
    to see, no end to hold it at. The operating system lists it all the same: the native ids that appeared
    while start() ran, but for `threading`'s own (each notes its id as its run() begins), are the threads
    start() started that way; one of them still listed when stop() returns, while a thread `threading` did not
    start still runs Python code (`_census.foreign_threads`: not one that has ended and is only slow to
    leave the list), was still running then.

    With `hold_taken(event)`, the `Queue.get` of a thread start() started that would return `event` holds it
    until the next stop() has waited (a join, a Condition's wait, an `is_alive()`) or returned: so the
    flusher has that event in hand once stop() has set whatever stop signal it sets, the moment a flusher
    that looks at its signal before delivering loses it, by order and not by luck. (At most `_TAKE_HELD_S`
    for the stop() to come, and `_STOP_UNSEEN_S` once it has, for one that waits where the hook cannot see:
    such a stop() (`outwaited`) took the grader's time, and its length says nothing.)
    """

    def __init__(self, *, hold_s: float = 0.0) -> None:
        self.started: dict[threading.Thread, str] = {}  # thread -> the call that started it
        self.gates: dict[threading.Thread, threading.Event] = {}  # open: the thread may end
        self.ending: set[threading.Thread] = set()  # threads whose work is over, held at their end
        self.seen_ended: set[threading.Thread] = set()  # the service saw these end: it waited for them
        self.let_go: set[threading.Thread] = set()  # the grader let these end (what was late is said once)
        self.current = ""  # the call the driver is making
        self.batch_problems: list[str] = []
        self.stop_problems: list[str] = []
        self.hold_s = hold_s
        self.jobs = threading.Condition()  # guards what follows: the threads in handle() and the hold
        self.in_handle: set[int] = set()
        self.holding = False
        self.hold_until = 0.0  # (monotonic seconds)
        self.most = 0  # the most threads this batch's jobs ran on at once
        self.driver = 0  # the thread that calls the service
        self.threading_ids: set[int] = set()  # native ids of the threads `threading` started while the hook was set
        self.start_ids: set[int] = set()  # native ids that appeared while a start() ran, `threading`'s or not
        self.listed_before: set[int] = set()  # the native ids listed when the current start() was called
        self.foreign_before = foreign_threads()  # the threads outside `threading` that ran before this replay
        self.taking = threading.Condition()  # guards what follows: the hold on an event taken before a stop()
        self.hold_event: int | None = None  # the event whose taking is held until the next stop() has waited
        self.held = False  # a thread start() started has taken it, and is held in Queue.get
        self.stop_waited = False  # the stop() in progress has waited, or returned
        self.stop_began = 0.0  # (monotonic seconds)
        self.outwaited = False  # the last stop() waited out the hold's bound: it waited where the hook cannot see
        self.taken_at_stop: list[int] = []  # events handed over by a held Queue.get once stop() had waited
        self._previous = threading._trace_hook  # type: ignore[attr-defined]
        threading.settrace(self.hook)
        _watching[0] = self

    def gate(self, thread: threading.Thread) -> threading.Event:
        return self.gates.setdefault(thread, threading.Event())

    def hook(self, frame: object, event: str, arg: object) -> Callable[..., object] | None:
        """The trace hook of the driver's threads and of every thread started while it is set (a trace hook,
        not a profile hook: memray keeps the profile hook for its stacks). It sees calls only."""
        code = frame.f_code  # type: ignore[attr-defined]
        if (code is CONDITION_WAIT or code is _JOIN or code is _IS_ALIVE) and self.current == "stop":
            if threading.get_ident() == self.driver:
                self._stop_waits()
        if code is _START:
            me = threading._active.get(threading.get_ident())  # type: ignore[attr-defined]  # (no dummy thread)
            owner = self.started.get(me, self.current)  # type: ignore[arg-type]
            if owner:
                self.started[frame.f_locals["self"]] = owner  # type: ignore[attr-defined]
            if owner == "batch" and self.current == "batch":
                # The batch's threads alive now, and the one starting (not alive yet); one that starts others
                # (a launcher) is not counted while it does, nor one already waited for (seen ended).
                batch = [
                    t for t, o in list(self.started.items()) if o == "batch" and t is not me and not self._waited(t)
                ]
                alive = alive_threads(batch)
                self._ran_on(len(alive) + 1)
        elif code is CONDITION_WAIT and self.holding and threading.get_ident() == self.driver:
            timeout = frame.f_locals["timeout"]  # type: ignore[attr-defined]
            if (timeout is None or timeout > 0) and not self._in_start(frame):  # (a Thread.start waits too)
                self._stop_holding()
        elif code is _JOIN or code is _IS_ALIVE:
            thread = frame.f_locals["self"]  # type: ignore[attr-defined]
            if code is _JOIN and self.holding and threading.get_ident() == self.driver:
                self._stop_holding()
            self.gate(thread).set()
            frame.f_trace_lines = False  # type: ignore[attr-defined]
            return self._seen_when_ended(thread)
        elif code is _GET:
            if self.started.get(threading._active.get(threading.get_ident())) == "start":  # type: ignore[attr-defined,arg-type]
                frame.f_trace_lines = False  # type: ignore[attr-defined]
                return self._on_taken
        elif code.co_name == "run" and frame.f_back is not None and frame.f_back.f_code is _BOOTSTRAP:  # type: ignore[attr-defined]
            self.threading_ids.add(_native_id())
            if threading._active.get(threading.get_ident()) in self.started:  # type: ignore[attr-defined]
                frame.f_trace_lines = False  # type: ignore[attr-defined]
                return self._at_end
        return None

    @staticmethod
    def _in_start(frame: object) -> bool:
        while frame is not None:
            if frame.f_code is _START:  # type: ignore[attr-defined]
                return True
            frame = frame.f_back  # type: ignore[attr-defined]
        return False

    def _ran_on(self, threads: int) -> None:
        with self.jobs:
            self.most = max(self.most, threads)

    def _stop_holding(self) -> None:
        with self.jobs:
            self.holding = False
            self.jobs.notify_all()

    def job_begins(self) -> None:
        """In `handle()`: count this thread among those doing the batch's jobs, and wait while the hold lasts."""
        me = threading.get_ident()
        if self.current != "batch":
            return
        if me == self.driver:  # batch() does a job itself: it has dispatched what it will before this one
            self._stop_holding()
        with self.jobs:
            self.in_handle.add(me)
            self.most = max(self.most, len(self.in_handle))
            while self.holding and (left := self.hold_until - _monotonic()) > 0:
                self.jobs.wait(left)
            self.holding = False  # (at the bound: the batch's later jobs are not held)

    def job_ends(self) -> None:
        with self.jobs:
            self.in_handle.discard(threading.get_ident())

    def hold_taken(self, event: int | None) -> None:
        """Hold `event`, once a thread start() started takes it, until the next stop() has waited or returned."""
        with self.taking:
            self.hold_event, self.held, self.stop_waited = event, False, False

    def awaits_take(self) -> bool:
        """An event is to be held, and no thread has taken it yet."""
        return self.hold_event is not None and not self.held

    def may_take(self) -> bool:
        """An event is to be held, and a thread start() started runs, to take it (a service without one has none)."""
        return self.awaits_take() and bool(alive_threads([t for t, o in list(self.started.items()) if o == "start"]))

    def _on_taken(self, frame: object, event: str, arg: object) -> Callable[..., object] | None:
        """A thread start() started returns from Queue.get: hold the event `hold_taken` named there."""
        if event == "return" and type(arg) is int and arg == self.hold_event:
            self._hold(arg)
        return self._on_taken

    def _hold(self, event: int) -> None:
        with self.taking:
            if event != self.hold_event or self.held:
                return
            self.held = True
            until = _monotonic() + _TAKE_HELD_S
            while not self.stop_waited:
                if self.current == "stop":
                    until = min(until, self.stop_began + _STOP_UNSEEN_S)
                if (left := until - _monotonic()) <= 0:
                    self.outwaited = self.current == "stop"
                    break
                self.taking.wait(left)
            if self.stop_waited or self.outwaited:  # (handed over while stop() was in progress)
                self.taken_at_stop.append(event)
            self.hold_event = None

    def _stop_waits(self) -> None:
        """The stop() in progress waits, or has returned: an event held for it is handed over now."""
        with self.taking:
            if not self.stop_waited:
                self.stop_waited = True
                self.taking.notify_all()

    def _seen_when_ended(self, thread: threading.Thread) -> Callable[..., object]:
        def on_return(frame: object, event: str, arg: object) -> Callable[..., object]:
            if event == "return" and not _thread_alive(thread):  # (a trace function is not traced itself)
                self.seen_ended.add(thread)
            return on_return

        return on_return

    def _at_end(self, frame: object, event: str, arg: object) -> Callable[..., object]:
        """The thread's run() is returning: hold it there until somebody waits for it."""
        if event == "return":
            me = threading._active.get(threading.get_ident())  # type: ignore[attr-defined]
            self.ending.add(me)
            self.gate(me).wait()
        return self._at_end

    def _waited(self, thread: threading.Thread) -> bool:
        return thread in self.seen_ended or thread in self.let_go

    def _unwaited(self, owner: str) -> list[threading.Thread]:
        """Threads `owner` started that have ended their work, and nobody waited for."""
        return [t for t in list(self.ending) if self.started[t] == owner and not self._waited(t)]

    def _alive(self, owners: tuple[str, ...]) -> list[threading.Thread]:
        """Threads `owners` started that nobody saw end: held at their end (or still at work), or let
        end by a look that did not wait for them."""
        return [t for t, o in list(self.started.items()) if o in owners and not self._waited(t)]

    def _release(self, owners: tuple[str, ...]) -> None:
        self._let_go([thread for thread, owner in list(self.started.items()) if owner in owners])

    def _let_go(self, threads: list[threading.Thread]) -> None:
        for thread in threads:
            self.let_go.add(thread)
            self.gate(thread).set()

    def begin(self, call: str) -> None:
        """Before a call: at a stop(), a thread a batch left that ended on its own was never waited for.
        Only those are let go: one a batch left still running must have ended when stop() returns (a pool
        that start() starts and stop() stops may start its threads in a batch), or that stop() is caught."""
        if call == "stop" and (left := self._unwaited("batch")):
            self.batch_problems.append(
                _(
                    "{count} threads a batch started ended after batch() had returned: it did not wait for them",
                    count=len(left),
                )
            )
            self._let_go(left)
        if call == "batch":
            with self.jobs:
                self.driver, self.most, self.holding = threading.get_ident(), 0, self.hold_s > 0
                self.hold_until = _monotonic() + self.hold_s
        if call == "start":
            self.listed_before = os_threads()
        if call == "stop":
            with self.taking:
                self.stop_began, self.outwaited, self.driver = _monotonic(), False, threading.get_ident()
                self.current = call
                self.taking.notify_all()  # (a held thread's bound is the stop()'s from now on)
        else:
            self.current = call

    def _unthreaded(self) -> set[int]:
        """The native ids of the threads start() started outside `threading` that still run."""
        if not foreign_threads() - self.foreign_before:  # (none runs Python code: any left in the list has ended)
            return set()
        return (self.start_ids & os_threads()) - self.threading_ids

    def end(self, call: str) -> None:
        """Right after a call returned: what it should have waited for must have ended."""
        if call == "stop":
            self._stop_waits()
            with self.taking:
                self.hold_event = None  # (not taken before this stop(): none is held for a later one)
        self.current = ""
        if call == "start":
            self.start_ids |= os_threads() - self.listed_before
        if call == "batch":
            self._stop_holding()
            if self.most > WORKERS_PER_BATCH:
                self.batch_problems.append(
                    _(
                        "a batch's jobs ran on {count} threads at once (started for it, or in handle() together); "
                        "at most four may do them",
                        count=self.most,
                    )
                )
        if call == "batch" and (left := self._unwaited("batch")):
            self.batch_problems.append(
                _("batch() returned before {count} of its threads had ended (not joined)", count=len(left))
            )
            self._release(("batch",))
        elif call == "stop":
            unthreaded = len(self._unthreaded())
            for owner, problems in (("start", self.stop_problems), ("batch", self.batch_problems)):
                if (running := len(self._alive((owner,))) + (unthreaded if owner == "start" else 0)) > 0:
                    left = counted(running, "thread")
                    if owner == "start":
                        problem = _(
                            "stop() returned while a thread start() started (the flusher) was still running ({left})",
                            left=left,
                        )
                    else:
                        problem = _(
                            "stop() returned while a thread a batch started (its pool) was still running ({left})",
                            left=left,
                        )
                    problems.append(problem)
            self._release(("start", "batch"))

    def close(self) -> None:
        """Let every held thread end, and take the hook away from threads started from now on."""
        threading.settrace(self._previous)
        if _watching[0] is self:
            _watching[0] = None
        self._stop_holding()
        self._stop_waits()
        for gate in list(self.gates.values()):
            gate.set()
        self._release(("start", "batch", "stop"))


class _Driver:
    """Runs a service's blocking calls (batches, start, stop) in a thread of the traffic's own, with patience."""

    def __init__(self, patience_s: float, *, hold_s: float = 0.0) -> None:
        self.patience_s = patience_s
        self.owners = _Owners(hold_s=hold_s)  # before the driver's thread starts, so that it runs with the hook
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="week-traffic")
        self.jammed: list[ThreadPoolExecutor] = []

    def threads(self) -> set[threading.Thread]:
        """The driver's own threads: not the service's, so the gauge leaves them out."""
        return {*self.executor._threads, *(t for e in self.jammed for t in e._threads)}  # type: ignore[attr-defined]

    async def call(self, name: str, function: Callable[..., object], *args: object) -> tuple[str, object, float]:
        """("result", value, seconds), (exception name, exception, seconds) or ("nothing", None, patience)."""

        def timed() -> tuple[object, float]:
            self.owners.begin(name)
            started = _monotonic()
            try:
                return function(*args), _monotonic() - started
            except Exception as exc:
                return exc, _monotonic() - started
            finally:
                self.owners.end(name)

        future = asyncio.get_running_loop().run_in_executor(self.executor, timed)
        patience = self.patience_s + (self.owners.hold_s if name == "batch" else 0.0)  # (a hold is not the answer's)
        done, _pending = await asyncio.wait({future}, timeout=patience)
        if not done:  # stuck for good: that thread is the service's leftover; later calls get a fresh one
            self.jammed.append(self.executor)
            self.executor.shutdown(wait=False)
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="week-traffic")
            return "nothing", None, self.patience_s
        value, took = future.result()
        if isinstance(value, Exception):
            return type(value).__name__, value, took
        return "result", value, took

    def close(self) -> None:
        self.owners.close()
        self.executor.shutdown(wait=True)
        for executor in self.jammed:
            executor.shutdown(wait=False)


@dataclass
class _Traffic:
    """The clients of one replayed week: they send each kind of request and judge its answer."""

    service: LeakyService
    week: Week
    driver: _Driver
    rng: random.Random
    work_ms: float
    give_up_ms: float
    lookup_deadline_ms: float
    address: tuple[str, int]  # the key-value service's
    cancels: float = 0.0  # the share of reports that give up their client cancels (if any: every other stuck lookup)
    next_id: int = 1000
    last_sent: float = 0.0  # when the last request was sent (monotonic seconds)
    stuck_sent: list[float] = field(default_factory=list)  # when the lookups that get no answer were, lately

    def _launch(self, coro: Awaitable[object], judge: Callable[[asyncio.Task], None]) -> asyncio.Task:
        self.last_sent = _monotonic()
        task = asyncio.ensure_future(coro)
        task.add_done_callback(judge)
        self.week.in_flight.add(task)
        task.add_done_callback(self.week.in_flight.discard)  # an answered request's result is not kept
        return task

    def _served(self, kind: str) -> Served:
        self.week.served.append(served := Served(kind))
        self.next_id += 1
        return served

    def report(self) -> asyncio.Task:
        """One in three gives up, at its deadline or (a share `cancels` of them) cancelled by its client once
        the query has started; the query of one that gives up answers only once its client has gone."""
        gives_up, served = self.rng.random() < 1 / 3, self._served("report")
        kind = "complete"
        if gives_up:  # (no draw without cancels: the notebook's weeks stay the ones its text describes)
            kind = "cancel" if self.cancels and self.rng.random() < self.cancels else "deadline"
        deadline = self.give_up_ms if kind == "deadline" else 1000.0
        request = new_request(self.next_id, work_ms=self.work_ms, deadline_ms=deadline, gives_up=gives_up)
        judge = partial(_judge_report, request, kind, served, _monotonic())
        task = self._launch(self.service.report(request), judge)
        if kind == "cancel":  # the client hangs up once the handler is busy with the query, as in lesson 01
            started = asyncio.ensure_future(witness(request).query_started.wait())
            started.add_done_callback(lambda _started: task.cancel())
            task.add_done_callback(lambda _task: started.cancel())
        return task

    def lookup(self) -> asyncio.Task:
        """One in three asks for a key the key-value service never answers (but never more than
        `_STUCK_AT_ONCE` within the time such a lookup may hold a thread); which, neither the key nor the
        deadline (the same for all) says, and an answer carries a token only a client that read it has. With
        `cancels`, every other one of those is cancelled by its client halfway to the deadline, so a burst
        with two has both endings: its connection is open by then (on a machine too loaded to have opened it,
        there is nothing to close), and must be closed however the lookup ends."""
        stuck, served, now = self.rng.random() < 1 / 3, self._served("lookup"), _monotonic()
        held_s = 1.5 * self.lookup_deadline_ms / 1000  # a thread in a lookup that timed out, or was cancelled
        self.stuck_sent = [sent for sent in self.stuck_sent if now - sent < held_s]
        stuck = stuck and len(self.stuck_sent) < _STUCK_AT_ONCE
        if stuck:
            self.stuck_sent.append(now)
        cancelled = stuck and bool(self.cancels) and len(self.stuck_sent) % 2 == 0
        key = pick_key(self.address, self.rng.randrange(10**6), answered=not stuck, signed=True)
        lookup = Lookup(key, self.lookup_deadline_ms)
        served.key = "" if stuck else key  # an answered key must have been asked of the service
        answer = "" if stuck else expected_answer(self.address, key)
        judge = partial(_judge_lookup, lookup, stuck, answer, served, _monotonic(), cancelled=cancelled)
        task = self._launch(self.service.lookup(lookup), judge)
        if cancelled:
            hang_up = asyncio.get_running_loop().call_later(self.lookup_deadline_ms / 2000, task.cancel)
            task.add_done_callback(lambda _task: hang_up.cancel())
        return task

    def status(self) -> asyncio.Task:
        return self._launch(self.service.status(), partial(_judge_status, self._served("status")))

    def events(self, *, hold: bool = False) -> None:
        """Record one event; with `hold`, a thread of the service that takes it from a queue is held until the
        next stop() has waited (`_Owners.hold_taken`)."""
        served = self._served("events")
        if hold:
            self.driver.owners.hold_taken(self.next_id)
        try:
            self.service.record(self.next_id)
            served.ended_with, served.right, served.problem = "result", True, ""
            self.week.recorded.append(self.next_id)
        except Exception as exc:
            served.ended_with = type(exc).__name__
            served.problem = _("record() raised {error}", error=type(exc).__name__)
            if hold:
                self.driver.owners.hold_taken(None)  # (not queued: nothing to wait for)
        if not self.week.sink._down.is_set():
            self.week.up_events.append(self.next_id)

    async def batch(self) -> None:
        jobs = [self.rng.randrange(1000) for _job in range(self.rng.randrange(6, 12))]
        served, before = self._served("batch"), _handled[0]
        served.ended_with, value, _took = await self.driver.call("batch", self.service.batch, jobs)
        if served.ended_with != "result":
            served.problem = _(
                "a batch of {count} ended with {ended_with}", count=len(jobs), ended_with=served.ended_with
            )
        elif value != [job * job for job in jobs]:
            served.problem = _(
                "batch {jobs}... returned {value}..., not handle(job) for each job",
                jobs=jobs[:3],
                value=str(value)[:30],
            )
        elif _handled[0] - before != len(jobs):
            served.problem = _(
                "a batch of {count} jobs called handle() {calls} times", count=len(jobs), calls=_handled[0] - before
            )
        else:
            served.right, served.problem = True, ""

    async def lifecycle(self, method: str) -> None:
        """Start or stop the service; a stop() that never returns ends the restarts for the week."""
        if self.week.jammed:
            return
        if method == "start":
            self.week.sink.new_run()
        owners = self.driver.owners
        if method == "stop" and not self.week.sink._down.is_set() and owners.may_take():
            # The event to hold is queued and the sink is up: a flusher takes it soon; stop() comes once it has.
            held, delivered = owners.hold_event, self.week.sink.delivered
            await _wait_for(lambda: not owners.awaits_take() or held in delivered, self.driver.patience_s)
        down = self.week.sink._down.is_set()
        status, value, took = await self.driver.call(method, getattr(self.service, method))
        if method == "stop" and down and not owners.outwaited:  # (one that outwaited a hold took the grader's time)
            self.week.stops.append(took)
        if status == "nothing":
            self.week.jammed = True
            self.week.lifecycle_problems.append(
                _("{method}() had not returned after {patience:g} s", method=method, patience=self.driver.patience_s)
            )
        elif status != "result":  # `still_stubbed` reads the call off the front: it stays as it is, outside `_()`
            self.week.lifecycle_problems.append(
                f"{method}() " + _("ended with {status}: {value}", status=status, value=value)
            )


async def replay_week(
    service_class: Callable[..., LeakyService],
    address: tuple[str, int],
    *,
    days: int = 7,
    rounds: int = 2,
    mix: dict[str, int] | None = None,
    seed: int = 0,
    outage_day: int = 3,
    restart_every_round: bool = True,
    backoff_s: float = 0.02,
    working_set_bytes: int = WORKING_SET_BYTES,
    round_ms: float = 8.0,
    settle_ms: float = 60.0,
    patience_ms: float = 100.0,
    gauge: DailyGauge | None = None,
    work_ms: float = 20.0,
    give_up_ms: float = 5.0,
    lookup_deadline_ms: float = 50.0,
    client_cancels: float = 0.0,
    collect: bool = True,
    hold_ms: float = 0.0,
    sink_recovers: bool = False,
    hold_taken: bool = False,
) -> Week:
    """Serve `days` simulated days of traffic: each day `rounds` rounds of the `mix` of requests, then the
    gauge's reading. Reports give up one time in three (at `give_up_ms`, or, a share `client_cancels` of
    them, cancelled by their client once the query has started); lookups ask for a key the service
    never answers one time in three (every lookup has `lookup_deadline_ms`; a share `client_cancels` of
    those is cancelled by its client halfway to it); the sink goes down on
    `outage_day` and stays down; the service is restarted (a config reload) after every round. A request
    still waiting `patience_ms` after the lookups' deadline, counted from the last request sent, is judged
    unanswered; what the service left running is left running (threads it started are held at their end
    until it waits for them, or the grader has looked, and let go when the week is over). With `collect`
    (the notebook's replays), each day ends with a garbage collection, so that memray's heap at that moment
    is what is held, not garbage for the collector; and the connections the service never closed are
    counted (`Week.unclosed`), though asyncio closes each when its writer is freed (with a ResourceWarning,
    caught here), which the count of open sockets alone would not show. With `hold_ms`, a batch's jobs wait
    until batch() waits (or at most `hold_ms` after it was called), so that all the threads it would run
    them on at once show. With `sink_recovers`, the sink comes back after the last day, while the service
    still runs, once its flusher has tried it a few times (`_sink_recovers`). With `hold_taken`, the last
    event of each round the sink is up for, before a restart, is held in the `Queue.get` of the flusher that
    takes it until stop() has waited or returned (`_Owners.hold_taken`): at every such stop() the flusher
    has an event in hand, which it must deliver or put back.
    """
    mix = dict(MIX if mix is None else mix)
    week = Week(gauge=gauge if gauge is not None else DailyGauge())
    census = Census.take()
    week.service = service_class(address, week.sink, backoff_s=backoff_s, working_set_bytes=working_set_bytes)
    driver = _Driver(patience_ms / 1000, hold_s=hold_ms / 1000)
    warned = warnings.catch_warnings(record=True)
    caught = warned.__enter__() if collect else []
    if collect:
        warnings.simplefilter("always", ResourceWarning)
    try:
        traffic = _Traffic(
            week.service,
            week,
            driver,
            random.Random(seed),
            work_ms,
            give_up_ms,
            lookup_deadline_ms,
            address,
            cancels=client_cancels,
        )

        def up_events_delivered() -> bool:
            return all(week.sink.delivered.get(event) for event in week.up_events)

        await traffic.lifecycle("start")
        week.started_at = time.time() * 1000
        await asyncio.sleep(_AT_REST_S)  # the service at rest, before any traffic: memray's snapshots see it so
        for day in range(1, days + 1):
            if day == outage_day:  # what was recorded while the sink was up has had its chance first
                await _wait_for(up_events_delivered, patience_ms / 1000)
                week.sink.go_down()
            today: list[asyncio.Task] = []
            for _round in range(rounds):
                round_ends = _monotonic() + round_ms / 1000  # the round's batches run within its time
                today += [traffic.report() for _request in range(mix.get("report", 0))]
                today += [traffic.lookup() for _request in range(mix.get("lookup", 0))]
                today += [traffic.status() for _request in range(mix.get("status", 0))]
                events = mix.get("events", 0)
                held = hold_taken and restart_every_round and not week.sink._down.is_set()
                for request in range(events):
                    traffic.events(hold=held and request == events - 1)
                for _request in range(mix.get("batch", 0)):
                    await traffic.batch()
                await asyncio.sleep(max(0.0, round_ends - _monotonic()))
                if restart_every_round:
                    await traffic.lifecycle("stop")
                    await traffic.lifecycle("start")
            # The end of the day: what had to end has had time to, and the gauge takes its reading.
            if today:
                await asyncio.wait(today, timeout=settle_ms / 1000)
            today.clear()  # the day's answers are the clients' (gone now), not the service's: not held here
            tasks = [t for t in census.new_tasks() if t is not asyncio.current_task()]
            threads = [t for t in census.new_threads() if t not in driver.threads()]
            week.gauge.sample(day, len(tasks), len(threads))
            if collect:
                gc.collect()
            week.day_ends.append(time.time() * 1000)
        if sink_recovers and week.sink._down.is_set() and not week.jammed:
            await _sink_recovers(week, backoff_s, patience_ms / 1000)
        await traffic.lifecycle("stop")
        if week.sink.closest_retry < 0.9 * backoff_s:  # (load makes a back-off longer, never shorter)
            week.lifecycle_problems.append(
                _(
                    "the down sink was called again {gap:.1f} ms after it refused a call of the same thread, within "
                    "one run of the service: retry DependencyError after self.backoff_s ({backoff:g} ms)",
                    gap=week.sink.closest_retry * 1000,
                    backoff=backoff_s * 1000,
                )
            )
        driver.owners.close()  # whatever the service left, held at its end, may end now
        week.stop_problems += driver.owners.stop_problems
        week.taken_at_stop = driver.owners.taken_at_stop
        week.batch_problems += driver.owners.batch_problems

        # After the last stop(), every event record() took was delivered once, or is back on self.events.
        def once(event: int, waiting: list[int]) -> bool:
            return week.sink.delivered.get(event, 0) + waiting.count(event) == 1

        def accounted() -> bool:
            waiting = list(getattr(week.service.events, "queue", ()))
            return all(once(event, waiting) for event in week.recorded)

        # Both at once: the last requests get their deadline and patience from when they were sent, and
        # the events get patience (a flusher stop() did not wait for may put one back late).
        answers_due = traffic.last_sent + (lookup_deadline_ms + patience_ms) / 1000
        await asyncio.gather(_all_done(week.in_flight, answers_due), _wait_for(accounted, patience_ms / 1000))
        waiting = list(getattr(week.service.events, "queue", ()))
        wrong = [e for e in week.recorded if not once(e, waiting)]
        # An event a held Queue.get handed over once stop() had waited: the flusher had it in hand as stop() came.
        lost = [e for e in week.taken_at_stop if e in wrong and not week.sink.delivered.get(e) and e not in waiting]
        if lost:
            week.lifecycle_problems.append(
                _(
                    "{count} events the flusher took from self.events as stop() was called were neither delivered "
                    "nor put back (events {events}): an event the flusher has taken must be delivered, or put back "
                    "on self.events, even when stop() comes right after it took it",
                    count=len(lost),
                    events=", ".join(map(str, lost[:5])),
                )
            )
            wrong = [e for e in wrong if e not in lost]
        if wrong:
            times, back = week.sink.delivered.get(wrong[0], 0), waiting.count(wrong[0])
            week.lifecycle_problems.append(
                _(
                    "{wrong} of {recorded} recorded events were not delivered once or back on self.events "
                    "after stop() (event {event}: delivered {times} times, on self.events {back} times)",
                    wrong=len(wrong),
                    recorded=len(week.recorded),
                    event=wrong[0],
                    times=times,
                    back=back,
                )
            )
        # An event recorded while the sink was up is delivered once, however often the service restarted.
        if not week.sink._down.is_set():  # (after an outage, the wait before it has already had its chance)
            await _wait_for(up_events_delivered, patience_ms / 1000)
        if undelivered := [e for e in week.up_events if week.sink.delivered.get(e, 0) != 1 and e not in lost]:
            times = week.sink.delivered.get(undelivered[0], 0)
            week.lifecycle_problems.append(
                _(
                    "{count} events recorded while the sink was up were not delivered exactly once "
                    "(event {event}: {times} times)",
                    count=len(undelivered),
                    event=undelivered[0],
                    times=times,
                )
            )
    finally:
        driver.close()  # (the hook holding the service's threads goes, whatever happened)
        if collect:
            warned.__exit__(None, None, None)
            week.unclosed = _unclosed_writers(caught)
    return week


async def _sink_recovers(week: Week, backoff_s: float, patience_s: float) -> None:
    """End the sink's outage while the service runs: once its flusher has tried the down sink a few times (a
    state, waited for: a flusher that gave up, or a service with none, waits out a bound a right one never
    needs), the sink recovers, and every event still undelivered must be delivered by the running flusher,
    before stop() (again a state, bounded for the wrong ones only)."""
    sink = week.sink
    await _wait_for(lambda: sink.refused >= 3, patience_s + 10 * backoff_s)
    waiting = [event for event in week.recorded if not sink.delivered.get(event)]
    sink.recover()
    bound = patience_s + 4 * backoff_s
    if await _wait_for(lambda: all(sink.delivered.get(event) for event in waiting), bound):
        return
    left = [event for event in waiting if not sink.delivered.get(event)]
    week.lifecycle_problems.append(
        _(
            "{left} of {waiting} events queued while the sink was down were still undelivered {bound:.1f} s after "
            "it came back, with the service running (before stop()): the flusher retries DependencyError after "
            "self.backoff_s, until the sink takes the event",
            left=len(left),
            waiting=len(waiting),
            bound=bound,
        )
    )


def _unclosed_writers(caught: list[warnings.WarningMessage]) -> int:
    """How many of the warnings caught during a replay say a StreamWriter was freed unclosed (asyncio then
    closes its connection); the others are shown as they would have been."""
    unclosed = 0
    for warning in caught:
        if issubclass(warning.category, ResourceWarning) and str(warning.message).startswith("unclosed <StreamWriter"):
            unclosed += 1
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return unclosed


async def _all_done(tasks: set[asyncio.Task], deadline: float) -> None:
    """Wait until `tasks` are done, or the monotonic clock reaches `deadline`."""
    if tasks:
        await asyncio.wait(set(tasks), timeout=max(0.0, deadline - _monotonic()))


async def _wait_for(condition: Callable[[], bool], limit_s: float) -> bool:
    deadline = _monotonic() + limit_s
    while not condition():
        if _monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True


def heap_by_day(recording: object, week: Week) -> list[int]:
    """memray's heap (bytes) once the service had started, at rest before any traffic, then at each gauge
    reading of a recorded week: the first of memray's snapshots (one every few milliseconds) taken at or
    after each moment."""
    import memray

    snapshots = list(memray.FileReader(Path(recording.capture)).get_memory_snapshots())  # type: ignore[attr-defined]
    heaps = []
    for moment in [week.started_at, *week.day_ends]:
        after = [s.heap for s in snapshots if s.time >= moment]
        heaps.append(after[0] if after else snapshots[-1].heap)
    return heaps


def socket_counter() -> Callable[[], int]:
    """A count of the sockets this process has opened since now (the kernel's own left out), for a
    Recorder's `counts`: it reads /proc, so the recorder's thread may call it."""
    baseline = _socket_count()
    return lambda: max(0, _socket_count() - baseline)


def week_recorder(label: str) -> object:
    """A `leaklab.Recorder` for a replayed week that also samples the gauge's total (live tasks + threads)
    and the sockets opened since it was made, so that the plot draws what the alert and the leak count."""
    from .._recording import Recorder

    recorder: Recorder

    def total() -> int:
        tasks, threads = recorder.counts()
        return tasks + threads

    recorder = Recorder(label, counts={"tasks + threads": total, "open sockets": socket_counter()})
    return recorder


def week_markers(week: Week, started_ms: float) -> list[tuple[float, str]]:
    """The end of each simulated day on a recording's time axis (`Recorder.started_ms` is its zero),
    labelled as the gauge logged it, the alert where it fired: markers for `plot_runs`."""
    markers = []
    for day, at in enumerate(week.day_ends, start=1):
        tasks, threads = week.gauge.readings[day - 1]
        if day in week.gauge.alerts[:1]:
            label = _("{day} ends: ALERT ({total})", day=_day_name(day), total=tasks + threads)
        else:
            label = _("{day} ends", day=_day_name(day))
        markers.append((at - started_ms, label))
    return markers


def still_stubbed(week: Week) -> list[str]:
    """The service's calls that raised NotImplementedError in a replayed week: the exercise's stubs."""
    raised = {
        f"{s.kind if s.kind != 'events' else 'record'}()" for s in week.served if s.ended_with == "NotImplementedError"
    }
    raised |= {p.split(" ", 1)[0] for p in week.lifecycle_problems if "NotImplementedError" in p}
    return sorted(raised)


def week_summary(week: Week, recording: object) -> str:
    """What a replayed week left and how its requests ended: the heap's growth, the tasks, threads and
    sockets still alive, and every way a request or a restart went wrong (the first few of each)."""
    heaps = heap_by_day(recording, week)
    sockets = recording.series.get("open sockets", [0])  # type: ignore[attr-defined]
    readings = " ".join(str(tasks + threads) for tasks, threads in week.gauge.readings)
    if week.gauge.alerts:
        gauge = _(
            "the gauge each night (tasks + threads): {readings}; alerts on day {days}",
            readings=readings,
            days=", ".join(map(str, week.gauge.alerts)),
        )
    else:
        gauge = _("the gauge each night (tasks + threads): {readings}; no alert", readings=readings)
    lines = [
        _(
            "heap from {start:.2f} MiB once started to {end:.2f} MiB on Sunday night: x{growth:.2f}",
            start=heaps[0] / 2**20,
            end=heaps[-1] / 2**20,
            growth=heaps[-1] / heaps[0],
        ),
        _(
            "left alive: {tasks} tasks, {threads} threads, {sockets} open sockets",
            tasks=recording.leftover_tasks,  # type: ignore[attr-defined]
            threads=recording.leftover_threads,  # type: ignore[attr-defined]
            sockets=sockets[-1],
        ),
        gauge,
    ]
    if week.unclosed:
        lines.append(
            _(
                "sockets: {count} connections the service never closed (asyncio closed each once its writer "
                "was freed, with a ResourceWarning; the grader keeps every task to the end, and finds them open)",
                count=week.unclosed,
            )
        )
    if week.problems:
        lines.append(
            _(
                "requests: {wrong} of {total} did not end as specified:",
                wrong=len(week.problems),
                total=len(week.served),
            )
        )
        lines += [f"  {problem}" for problem in week.problems[:4]]
    else:
        lines.append(_("requests: all {total} ended as specified", total=len(week.served)))
    # What the threads and the restarts did: seen by the replay's own hook, even where nothing is left at the end.
    threads = [*week.batch_problems[:2], *week.stop_problems[:2], *week.lifecycle_problems[:2]]
    if threads:
        lines.append(_("threads, restarts and events:"))
    else:
        lines.append(_("threads, restarts and events: every thread joined, every event accounted for"))
    lines += [f"  {problem}" for problem in threads]
    return "\n".join(lines)


# --- the diagnosis: what the demo week's dump and memray show, for the lesson's graded diagnosis -------


@graders_truth
def _diagnosis() -> tuple[tuple[str, ...], str]:
    """The groups of the leaky week's dump that are the service's, biggest first, each named by the service's
    function it waits in; and the one of those whose leftovers memray finds holding the most. Constants, so
    that grading runs nothing; `_measure_the_diagnosis()` measures them, and a unit test keeps them true."""
    return ("worker", "run_query", "_flush", "lookup"), "worker"


guard_source(__name__)  # `_diagnosis()`'s constants, parsed out of this file, are the grader's answer too


def __getattr__(name: str) -> object:
    """`_DUMP_GROUPS` and `_HOLDS_MOST`, the hidden test's names for `_diagnosis()`: read here, so that a
    learner's cell that reads them is noted (`_truth`)."""
    if name in ("_DUMP_GROUPS", "_HOLDS_MOST"):
        note(__name__, name, sys._getframe(1))
        groups, holds_most = _diagnosis()
        return groups if name == "_DUMP_GROUPS" else holds_most
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _service_functions() -> set[str]:
    """Every function defined in `LeakyService`'s code (nested ones too): the names a dump of it can show."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(LeakyService)))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


# Which method of the service starts each group: a learner who names these has read the caller, not the wait.
_STARTED_BY = {"batch": "threads", "report": "tasks", "start": "threads"}


def _bare(name: str) -> str:
    return name.strip().rsplit(".", 1)[-1]  # "LeakyService.batch.<locals>.worker" is as good as "worker"


def check_diagnosis(groups: object, holds_most: object) -> None:
    """The notebook's visible check of the diagnosis: raises AssertionError saying what to read again when
    `groups` are not the dump's four groups of the service, biggest first, or `holds_most` not the one memray
    finds holding the most. The messages say where to look, never what the answer is."""
    __tracebackhide__ = True
    assert isinstance(groups, list | tuple) and all(isinstance(name, str) for name in groups), _(
        "DUMP_GROUPS should be a list of str, the functions' names; it is {groups!r}", groups=groups
    )
    assert isinstance(holds_most, str), _(
        "HOLDS_MOST should be a str, a function's name; it is {holds_most!r}", holds_most=holds_most
    )
    named = [_bare(name) for name in groups]
    truth, truth_holds_most = _diagnosis()
    assert len(named) == 4, _(
        "DUMP_GROUPS names {count} groups; the service has four big groups in the dump", count=len(named)
    )
    strangers = [name for name in [*named, _bare(holds_most)] if name not in _service_functions()]
    assert not strangers, _(
        "{strangers}: not functions of the service's code; read each group's innermost frame in "
        "week_in_production.py, below those of threading.py, queue.py or asyncio",
        strangers=strangers,
    )
    for name in named:
        if name in _STARTED_BY and name not in truth:
            if _STARTED_BY[name] == "threads":
                message = _(
                    "`{name}` starts threads of a group, but the dump names where they wait, not who "
                    "started them: the first frame of week_in_production.py in the group, reading from the top",
                    name=name,
                )
            else:
                message = _(
                    "`{name}` starts tasks of a group, but the dump names where they wait, not who "
                    "started them: the first frame of week_in_production.py in the group, reading from the top",
                    name=name,
                )
            raise AssertionError(message)
    assert len(set(named)) == 4, _(
        "DUMP_GROUPS = {groups!r} names a group twice; the four groups wait in four places", groups=groups
    )
    missing = [name for name in named if name not in truth]
    assert not missing, _(
        "{missing}: no big group of the dump waits there; read the groups again, one by one", missing=missing
    )
    assert named == list(truth), _(
        "the right four groups, but not biggest first: order them by the count that opens each group "
        "(`N @ ...`), the largest first"
    )
    holder = _bare(holds_most)
    assert holder != "__init__", _(
        "`__init__` is the service's own working set, held by design, not a leak: leave it out of memray's sums"
    )
    assert holder in truth, _(
        "HOLDS_MOST = {holds_most!r} is not one of the four groups you named", holds_most=holds_most
    )
    assert holder == truth_holds_most, _(
        "HOLDS_MOST = {holds_most!r}: by memray's sums, another of the four groups holds more; the count of a "
        "group is not its memory, read the MiB beside each function",
        holds_most=holds_most,
    )


def _own_function(frames: list[tuple[str, str]]) -> str | None:
    """The innermost of `frames` ((function, file), innermost first) that is this module's."""
    return next((function for function, file in frames if Path(file).name == Path(__file__).name), None)


@graders_truth
def _measure_the_diagnosis() -> tuple[list[str], str]:
    """Replay the notebook's leaky week (seed 0) under a Recorder in this process, then read the task dump's
    groups and memray's leaked allocations as the lesson's learner does. It leaves the leak running: call it
    in a process of its own."""
    import memray

    from .._dump import task_dump
    from .._recording import Recorder

    async def week() -> tuple[Path, str]:
        address = key_value_service()
        async with Recorder("diagnosis") as recorder:
            await replay_week(LeakyService, address, gauge=DailyGauge(log=False))
        return recorder.recording.capture, task_dump(debug=1)  # type: ignore[union-attr]  # (before the loop ends)

    capture, dump = asyncio.run(week())
    groups: list[str] = []
    for block in dump.split("\n\n")[1:]:
        frames = [line.split("\t", 1)[1].split() for line in block.splitlines() if line.startswith("#\t")]
        own = _own_function([(frame[0], frame[1].rsplit(":", 1)[0]) for frame in frames if len(frame) == 2])
        if own in _service_functions() and own not in groups:
            groups.append(own)
    held: dict[str, int] = {}
    for record in memray.FileReader(capture).get_leaked_allocation_records(merge_threads=True):
        own = _own_function([(function, file) for function, file, _line in record.stack_trace()])
        if own and own != "__init__":  # the service's working set, held by design
            held[own] = held.get(own, 0) + record.size
    return groups, max(held, key=held.__getitem__)


async def leaky_rounds(rounds: int = 10) -> AsyncIterator[str]:
    """The leak for `leaklab run`: a simulated day of the leaky service's traffic per round (a fresh
    service each day, as after a deploy; what each left running stays), its daily gauge printed."""
    address = key_value_service()
    for day in range(rounds):
        week = await replay_week(LeakyService, address, days=1, seed=day, gauge=DailyGauge(log=False))
        tasks, threads = week.gauge.readings[-1]
        yield _(
            "day {day}: {requests} requests; the gauge reads {total}",
            day=day + 1,
            requests=len(week.served),
            total=tasks + threads,
        )


# --- grading: what a fresh process runs against the learner's service ----------------------------------

_PHASES = {  # each kind of request on its own first, so that each leak is found (and credited) on its own
    "report": {"mix": {"report": 6}},
    "lookup": {"mix": {"lookup": 4}},
    "batch": {"mix": {"batch": 1}, "hold_ms": 300.0},  # (a batch's jobs wait until it has dispatched them all)
    "events": {"mix": {"events": 3}, "restart_every_round": True, "outage_day": 2},
    # The flusher's own run: the sink goes down, is retried (a short back-off: a few retries in milliseconds),
    # and comes back while the service runs; counted with the events.
    "recovery": {"mix": {"events": 3}, "outage_day": 2, "rounds": 2, "backoff_s": 0.02, "sink_recovers": True},
}
_LABELS = {"report": "reports", "lookup": "lookups", "batch": "batches", "events": "events"}


def _socket_count() -> int:
    count = 0
    for fd in _listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def _processes_at_work() -> int:
    """This process's children still running (not ended, not zombies): a call moved into a subprocess
    holds its socket there, out of this process's count, for as long as it runs."""
    me = _getpid()
    return sum(parent == me for parent in process_parents(running_only=True).values())


@dataclass
class _Left:
    """What one phase of the grading left behind, counted once the week was over."""

    tasks: int = 0
    threads: int = 0
    sockets: int = 0
    processes: int = 0

    def problems(self) -> list[str]:
        found = []
        if self.tasks:
            found.append(
                ngettext(
                    "{n} task was still pending after the week",
                    "{n} tasks were still pending after the week",
                    self.tasks,
                )
            )
        if self.threads:
            found.append(
                ngettext(
                    "{n} thread was still running after the week",
                    "{n} threads were still running after the week",
                    self.threads,
                )
            )
        if self.sockets:
            found.append(
                ngettext(
                    "{n} socket was still open after the week",
                    "{n} sockets were still open after the week",
                    self.sockets,
                )
            )
        if self.processes:
            found.append(
                ngettext(
                    "{n} process was still running after the week",
                    "{n} processes were still running after the week",
                    self.processes,
                )
            )
        return found


def _pending_tasks() -> set[asyncio.Task]:
    """This loop's pending tasks: asyncio's registry, and every task the garbage collector tracks (one an
    answer took out of the registry still counts, as the grader's own count of leftovers finds it)."""
    loop = asyncio.get_running_loop()
    tasks = {*_all_tasks(), *(o for o in _all_objects() if isinstance(o, _TASK_TYPES))}
    return {t for t in tasks if task_loop(t) is loop and not task_done(t)}


def _threads_at_work() -> int:
    """This process's threads, but for the idle workers of the loop's default executor (`asyncio.to_thread`'s):
    a pool of bounded size, reused by every call, so not a leftover; one of them still in a call is."""
    executor = getattr(asyncio.get_running_loop(), "_default_executor", None)
    frames = _current_frames()
    idle = [t for t in getattr(executor, "_threads", ()) if (f := frames.get(t.ident)) and f.f_code is _IDLE_WORKER]
    return len(_listdir("/proc/self/task")) - len(idle)


def _unframed_threads() -> int:
    """This process's threads that run no Python code: a thread that has left Python on its way out (joined,
    or ended unjoined) is one until the operating system drops it."""
    return len(_listdir("/proc/self/task")) - len(_current_frames())


# The graded week's service, kept alive until the grader has measured the memory the run still holds: what
# the service keeps on itself (a cache of every report) is held per request as much as a module's cache is.
_KEPT: list[LeakyService] = []


async def _measured(replay: Callable[[], Awaitable[Week]], *, keep: bool = False) -> tuple[Week, _Left]:
    """Replay a week and count what it left: pending tasks, running threads, open sockets; with `keep`, the
    service stays alive (in `_KEPT`) once the week is over.

    (Memory is the grader's own measure, over the whole run: its task factory holds every task, with
    its result, until the run is over, so bytes held cannot be told apart per phase.)
    """
    tasks_before, threads_before, sockets_before = _pending_tasks(), _threads_at_work(), _socket_count()
    processes_before, unframed_before = _processes_at_work(), _unframed_threads()
    week = await replay()

    # Threads that were joined leave the operating system's list a moment later (a moment a loaded machine
    # can stretch), and a thread stop() let go may end by itself soon after; leaked ones stay. So: 0.3 s for
    # everything to end, then longer only for what is on its way out (a thread that has left Python, a
    # child process not yet ended).
    def settled() -> bool:
        return (
            _threads_at_work() <= threads_before
            and _socket_count() <= sockets_before
            and _processes_at_work() <= processes_before
        )

    def only_leftovers() -> bool:
        return _unframed_threads() <= unframed_before and _processes_at_work() <= processes_before

    if not await _wait_for(settled, 0.3):
        await _wait_for(lambda: settled() or only_leftovers(), 1.7)
    await asyncio.sleep(0)  # cancelled children finish
    left = _Left(
        tasks=len(_pending_tasks() - tasks_before - {asyncio.current_task()}),
        threads=max(0, _threads_at_work() - threads_before),
        sockets=max(0, _socket_count() - sockets_before),
        processes=max(0, _processes_at_work() - processes_before),
    )
    if keep and week.service is not None:
        _KEPT.append(week.service)
    week.service, week.in_flight = None, set()
    return week, left


def probe(
    service_class: Callable[..., LeakyService],
    *,
    seed: int = 0,
    days: int = 7,
    rounds: int = 2,
    mix: dict[str, int] | None = None,
    backoff_s: float = 0.2,
    lookup_deadline_ms: float = 1000.0,
    give_up_ms: float = 5.0,
) -> tuple[Awaitable[object], Callable[[], dict]]:
    """Each kind of request on its own for two days, then a whole week of the mix: what each left, and
    whether every request got the right answer. The key-value service runs in a process of its own.

    Every lookup has `lookup_deadline_ms` (far above a round trip on a loaded machine, so that no answered
    lookup times out: a machine busy enough stalls a process for a few hundred milliseconds at times, and
    every lookup then in flight would time out at a deadline of 250 ms): a TimeoutError before it is early,
    and one long after it is never answered. Of the reports that give up, half are cancelled by their
    client (the task text's other way to give up), and so are half the lookups the key-value service never
    answers."""
    address = key_value_service()
    results: dict[str, tuple[Week, _Left]] = {}
    _KEPT.clear()  # (a service from an earlier probe in this process is not this run's)
    options = {"backoff_s": backoff_s, "working_set_bytes": 64 * 1024, "patience_ms": 500.0, "settle_ms": 5.0}
    options["collect"] = False  # the grader counts what the answer released itself, with the collector off
    options["hold_taken"] = True  # at each restart while the sink is up, the flusher has an event in hand
    options.update(lookup_deadline_ms=lookup_deadline_ms, give_up_ms=give_up_ms, client_cancels=0.5)

    async def run() -> None:
        for number, (kind, phase) in enumerate(_PHASES.items()):
            settings = {"restart_every_round": False, "outage_day": 99, **options, "days": 2, "rounds": 3, **phase}
            settings.update(seed=seed * 10 + number, gauge=DailyGauge(log=False))
            results[kind] = await _measured(lambda: replay_week(service_class, address, **settings))  # noqa: B023
        settings = {**options, "days": days, "rounds": rounds, "mix": mix, "seed": seed * 10 + 9}
        settings["gauge"] = DailyGauge(log=False)
        results["week"] = await _measured(lambda: replay_week(service_class, address, **settings), keep=True)

    def summary() -> dict:
        asked = answered_keys(address)  # a lookup answered without asking the service made its answer up
        for week, _left in results.values():
            for served in week.served:
                if served.key and served.right and served.key not in asked:
                    served.right = False
                    served.problem = _("{key}: answered without asking the key-value service", key=served.key)
        counts: dict[str, object] = {}
        problems: list[str] = []
        requests = 0
        for kind in KINDS:
            label = _LABELS[kind]
            if kind not in results:  # the run ran out of its budget before this phase
                counts[f"{label}_leave_nothing"] = counts[f"{label}_answer_right"] = [0, 1]
                why = _("the grader's budget ran out before these requests were sent")
                problems.append(f"{label} answer right: {why}")
                continue
            week, left = results[kind]
            requests += len(week.served)
            leaks = left.problems()
            lifecycle = week.lifecycle_problems
            if kind == "events":  # the flusher's run through an outage that ends counts with the events
                recovery, recovery_left = results.get("recovery", (Week(), _Left()))
                requests += len(recovery.served)
                leaks += recovery_left.problems() + recovery.stop_problems[:1]
                lifecycle = lifecycle + recovery.lifecycle_problems
                if "recovery" not in results:
                    lifecycle.append(_("the grader's budget ran out before the sink's outage ended"))
            if kind == "batch":
                leaks += week.batch_problems[:2]
            if kind == "events":
                leaks += week.stop_problems[:2]
                # A flusher deaf in its back-off makes every stop() while the sink is down slow; a loaded
                # machine, one now and then: at least half of them, then.
                slow = [took for took in week.stops if took > min(1.0, backoff_s / 2)]
                if slow and 2 * len(slow) >= len(week.stops):
                    leaks.append(
                        _(
                            "stop() took up to {took:.2f} s with a {backoff:g} s back-off while the sink was "
                            "down: the retry loop slept through the stop signal",
                            took=max(slow),
                            backoff=backoff_s,
                        )
                    )
            checks = 4 if kind == "events" else 3
            counts[f"{label}_leave_nothing"] = [checks - min(checks, len(leaks)), checks]
            problems += [f"{label} leave nothing: {p}" for p in leaks]
            right, total = week.count(kind)
            wrong = [p for p in week.problems if p.startswith(kind + ":")]
            if kind == "events":
                wrong += lifecycle
                right, total = right + (not lifecycle), total + 1
            counts[f"{label}_answer_right"] = [right, total]
            problems += [f"{label} answer right: {p}" for p in wrong[:2]]
        if "week" in results:
            week, left = results["week"]
            requests += len(week.served)
            flat = left.problems() + week.batch_problems[:1] + week.stop_problems[:1] + week.lifecycle_problems[:1]
            if week.problems:
                flat.append(
                    _(
                        "{wrong} of {total} requests did not end as specified; the first, {first}",
                        wrong=len(week.problems),
                        total=len(week.served),
                        first=week.problems[0],
                    )
                )
            counts["week_flat"] = [4 - min(4, len(flat)), 4]
            problems += [f"week flat: {p}" for p in flat]
            if flat:
                readings = ", ".join(str(tasks + threads) for tasks, threads in week.gauge.readings)
                gauge = _("the gauge's live tasks + threads at each day's end: {readings}", readings=readings)
                problems.append(f"week flat: {gauge}")
        else:
            counts["week_flat"] = [0, 1]
            why = _("the grader's budget ran out before the week was over")
            problems.append(f"week flat: {why}")
        units = {f"{label}_leave_nothing": "checks" for label in _LABELS.values()} | {"week_flat": "checks"}
        return {"requests": requests, "answered": requests, **counts, "units": units, "problems": problems}

    return run(), summary


# The scenario contract (leaklab.scenarios): the names an answer cell may use besides `asyncio`.
ANSWER = "Service"  # the name the task has the answer cell bind, whatever object it binds there
ANSWER_NAMES = (
    "BUFFER_BYTES",
    "PAYLOAD_BYTES",
    "DependencyError",
    "LeakyService",
    "Lookup",
    "Request",
    "Result",
    "handle",
    "queue",
    "slow_query",
    "threading",
    "time",
)
