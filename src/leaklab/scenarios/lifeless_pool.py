"""Scenario 04, the worker pool without a lifecycle: workers started per batch and never stopped.

The article (当Goroutine成为内存黑洞, section "Goroutine生命周期管理") offers a worker pool with a
lifecycle as a fix: a stop channel, a `sync.WaitGroup`, workers that survive a failing job. The leak it
prevents is this lesson's own example, not the article's: a batch function that starts a few workers for
every batch, feeds them the batch's jobs and never says "no more jobs", so they wait for ever, one set
per batch. The notebook's demo (`run_batches`, `Stops`) runs a learner's pool and notes what each stop
left undone, which a thread count alone does not show.

Time is compressed: a millisecond here stands for a second in the article.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from statistics import median

from .._census import ThreadMark, running, thread_mark
from .._i18n import _
from ._checks import FOREVER, Checks, StopWatch, alive, blocked_on, hold_end, python_threads, thread_ids, wait_until

# Python's own export list (`import *`); the grader gives an answer cell ANSWER_NAMES, at the end.
__all__ = ["BUFFER_BYTES", "JobFailed", "handle", "queue", "threading"]

BUFFER_BYTES = 128 * 1024  # DO NOT CHANGE: the working memory each worker holds while it runs


class JobFailed(Exception):
    """A job that could not be done."""


class _Held:
    """A job of the grader's that holds the worker which takes it, in `handle`, until the grader lets go;
    given a `StopWatch`, it also holds that worker's end (`hold_end`)."""

    def __init__(self, stop: StopWatch | None = None) -> None:
        self.taken, self.released = threading.Event(), threading.Event()
        self.grader = threading.current_thread()
        self.worker: threading.Thread | None = None
        self.stop = stop

    def hold(self) -> None:
        if threading.current_thread() is self.grader:  # a pool that does its jobs in submit(): no worker
            return
        self.worker = threading.current_thread()
        if self.stop is not None:
            hold_end(self.stop)
        self.taken.set()
        self.released.wait()

    def release(self) -> None:
        self.released.set()


# The jobs being held (see _stop_waits_for_every_worker), numbered from _FIRST_HELD: no other job is.
_HELD: dict[int, _Held] = {}
_FIRST_HELD = 10**9
# While a check watches (`_watching`): the mark of the thread each job was handled in, taken inside it
# (`_census.thread_mark`: its ident and native id, which no object of the answer's carries, and which,
# unlike current_thread, registers no thread started outside threading).
_RAN_IN: dict[int, ThreadMark] = {}
_WATCHING = threading.Event()


@contextmanager
def _watching() -> Iterator[dict[int, ThreadMark]]:
    """While the block runs, note the thread each job is handled in (the job's last run counts)."""
    _RAN_IN.clear()
    _WATCHING.set()
    try:
        yield _RAN_IN
    finally:
        _WATCHING.clear()


def handle(job: int) -> int:
    """Do one job (it takes a millisecond): its square; jobs below zero fail."""
    if _WATCHING.is_set():
        _RAN_IN[job] = thread_mark()
    held = _HELD.get(job)
    if held is not None:  # only in grading: a job that holds its worker until the grader lets go
        held.hold()
    time.sleep(0.001)
    if job < 0:
        raise JobFailed(_("job {job} failed", job=job))
    return job * job


def _leaky_worker(jobs: queue.Queue[int], results: queue.Queue[int]) -> None:
    buffer = bytearray(BUFFER_BYTES)  # working memory, held for as long as the worker waits
    while True:
        job = jobs.get()  # once the batch is done, this waits forever: nobody says "no more jobs"
        buffer[0] = job % 256
        results.put(handle(job))  # a failing job raises here and kills the worker


def leaky_process_batch(batch: list[int], *, workers: int = 4) -> list[int]:
    """Process a batch with a fresh set of workers that are never told to stop."""
    jobs: queue.Queue[int] = queue.Queue()
    results: queue.Queue[int] = queue.Queue()
    for _worker in range(workers):
        threading.Thread(target=_leaky_worker, args=(jobs, results), name="batch-worker", daemon=True).start()
    for job in batch:
        jobs.put(job)
    return sorted(results.get() for _job in batch)


async def leaky_rounds(rounds: int = 10) -> AsyncIterator[str]:
    """The leak for `leaklab run`: two batches of 20 jobs per round, each with workers never stopped."""
    for batch in range(rounds):
        for _twice in range(2):
            leaky_process_batch(list(range(batch, batch + 20)))
        yield _("2 batches of 20 jobs done")


PoolClass = Callable[..., object]  # the learner's pool class: Pool(workers=n)


# --- the notebook's demo: what each stop of a learner's pool left undone ---------------------------------


@dataclass
class Stops:
    """What each pool's stop did in `run_batches`, and two counts a `Recorder` samples meanwhile
    (`Recorder(label, counts=stops.counts)`): the half-fixes that a thread count alone hides."""

    endings: list[str] = field(default_factory=list)  # how each pool was stopped: "with" or "stop()"
    took_s: list[float] = field(default_factory=list)  # how long each stop took to return
    running_at_return: list[int] = field(default_factory=list)  # the pool's workers alive as it returned
    missing_at_return: list[int] = field(default_factory=list)  # its jobs not in `results` as it returned
    submitted: list[int] = field(default_factory=list)  # jobs submitted to each pool before its stop
    failing_reported: list[tuple[int, int]] = field(default_factory=list)  # (reported as JobFailed, failing)
    workers: list[threading.Thread] = field(default_factory=list)  # every pool's worker threads

    def running_when_stopped(self) -> int:
        """So far, the workers that were still running as their pool's stop returned."""
        return sum(self.running_at_return)

    def stops_with_jobs_missing(self) -> int:
        """So far, the stops that returned while some of their pool's jobs were not in `results`."""
        return sum(missing > 0 for missing in self.missing_at_return)

    def still_running(self) -> int:
        """Workers of the pools stopped so far whose thread is still running, now."""
        return len(alive(list(self.workers)))

    @property
    def counts(self) -> dict[str, Callable[[], int]]:
        return {
            "workers running as stop returned": self.running_when_stopped,
            "stops with jobs missing": self.stops_with_jobs_missing,
        }

    def summary(self) -> str:
        """The stops in a few lines: jobs missing, failures reported, workers left running, time taken."""
        if not self.took_s:
            return _("no pool was stopped")
        pools, took_ms = len(self.took_s), sorted(t * 1000 for t in self.took_s)
        reported = sum(r for r, _failing in self.failing_reported)
        failing = sum(f for _reported, f in self.failing_reported)
        return "\n".join(
            [
                _(
                    "{pools} pools, each stopped as soon as its jobs were queued "
                    "({by_with} by leaving `with`, {by_stop} by stop()):",
                    pools=pools,
                    by_with=self.endings.count("with"),
                    by_stop=self.endings.count("stop()"),
                ),
                "  "
                + _(
                    "jobs missing from results as stop returned: {missing} of {submitted} "
                    "(in {stops} of {pools} pools)",
                    missing=sum(self.missing_at_return),
                    submitted=sum(self.submitted),
                    stops=self.stops_with_jobs_missing(),
                    pools=pools,
                ),
                "  "
                + _(
                    "failing jobs reported by their JobFailed: {reported} of {failing}",
                    reported=reported,
                    failing=failing,
                ),
                "  "
                + _(
                    "workers still running as stop returned: {running} of {workers}",
                    running=self.running_when_stopped(),
                    workers=len(self.workers),
                ),
                "  " + _("workers still running now: {running}", running=self.still_running()),
                "  "
                + _(
                    "stop took {median:.1f} ms (median), {most:.1f} ms at the most",
                    median=median(took_ms),
                    most=took_ms[-1],
                ),
            ]
        )


def _one_pool(pool_class: PoolClass, workers: int, jobs: list[int], *, use_with: bool, stops: Stops) -> None:
    """Queue `jobs` on a fresh pool and stop it at once, by leaving `with` or by stop(); note what was left."""
    before = python_threads()
    if use_with:
        with pool_class(workers=workers) as pool:  # type: ignore[attr-defined]
            for job in jobs:
                pool.submit(job)
            started = python_threads() - before  # after the jobs: some pools start threads on demand
            stopping = time.monotonic()
        took = time.monotonic() - stopping
    else:
        pool = pool_class(workers=workers)
        pool.start()  # type: ignore[attr-defined]
        for job in jobs:
            pool.submit(job)  # type: ignore[attr-defined]
        started = python_threads() - before
        stopping = time.monotonic()
        pool.stop()  # type: ignore[attr-defined]
        took = time.monotonic() - stopping
    running = len(alive(started))  # right as the stop returned: a joined worker is no longer alive
    results = dict(getattr(pool, "results", {}))
    stops.endings.append("with" if use_with else "stop()")
    stops.took_s.append(took)
    stops.running_at_return.append(running)
    stops.missing_at_return.append(sum(job not in results for job in jobs))
    stops.submitted.append(len(jobs))
    failing = [job for job in jobs if job < 0]
    stops.failing_reported.append((sum(isinstance(results.get(job), JobFailed) for job in failing), len(failing)))
    stops.workers.extend(started)


def run_batches(
    pool_class: PoolClass,
    *,
    batches: int = 10,
    workers: int = 4,
    jobs: int = 20,
    long_queue: int = 240,
    every_s: float = 0.01,
    stops: Stops | None = None,
) -> Stops:
    """The notebook's demo: `batches` pools of `workers`, each given `jobs` jobs and one that fails, then
    stopped at once, with work still queued; every other pool is left by its `with` block, the rest are
    stopped by stop(). One last pool of two workers gets `long_queue` jobs (a millisecond each): a stop
    that waits a fixed time instead of for its workers returns before they are done. Returns `stops`."""
    stops = stops if stops is not None else Stops()
    for batch in range(batches):
        time.sleep(every_s)
        batch_jobs = list(range(batch, batch + jobs))
        batch_jobs.insert(jobs // 2, -1 - batch)  # a failing job, in the middle of the queue
        _one_pool(pool_class, workers, batch_jobs, use_with=batch % 2 == 0, stops=stops)
    if long_queue:
        time.sleep(every_s)
        _one_pool(pool_class, 2, [*range(long_queue), -1000], use_with=False, stops=stops)
    return stops


# --- grading: what a fresh process runs against the learner's pool ---------------------------------

_HOLD_BOUND_S = 3.0  # the wait for every worker to take a held job: milliseconds, with a wide margin
_HOLD_S = 0.1  # how long a worker stays held while stop() neither waits for it without a timeout nor returns
_LET_GO_S = 3.0  # the same while stop() joins a worker let go: a millisecond's job, with a wide margin


def _new_threads(before: set[str]) -> set[str]:
    return thread_ids() - before


def _running_of_pool(started: set[threading.Thread], ran_in: dict[int, ThreadMark], before: set[str]) -> int:
    """How many of a pool's threads run now: those that ran its jobs, by the mark each took inside as it ran
    one (`_census.running`: no flag of `threading` hides a thread that runs), and any other it started, as
    `alive` says; threads that ran before the pool (`before`, native ids: the grader's own) left out."""
    marks = {mark for mark in list(ran_in.values()) if str(mark[1]) not in before}
    natives: set[object] = {native for _ident, native in running(marks)}
    for thread in alive(started):
        natives.add(object.__getattribute__(thread, "__dict__").get("_native_id") or id(thread))
    return len(natives)


def _runs_its_workers(pool_class: PoolClass, workers: int) -> str:
    """A started pool runs `workers` threads: each of `workers` jobs of the grader's holds the worker that
    takes it, so even a pool that starts a thread per job no idle worker can take has started them all;
    and no thread runs before start() is called."""
    held = {_FIRST_HELD + n: _Held() for n in range(workers)}
    _HELD.update(held)
    before, before_ids = python_threads(), thread_ids()
    pool = pool_class(workers=workers)
    early = _new_threads(before_ids)  # asked before start(): a pool made and never started must leave none
    try:
        pool.start()
        for job in held:
            pool.submit(job)
        running = len(alive(python_threads() - before))  # a state: no worker can end while it is held
    finally:
        for job in held:
            _HELD.pop(job).release()
        pool.stop()
    if running < workers:
        return _(
            "Pool(workers={workers}), started and given {workers} jobs that each hold a worker, ran {running} "
            "threads: start() starts `workers` workers",
            workers=workers,
            running=running,
        )
    if early:
        return _(
            "Pool(workers={workers}) ran {threads} threads before start() was called: start() starts the "
            "workers (a pool made but never started, its owner failing before the `with`, would leave them "
            "waiting for ever)",
            workers=workers,
            threads=len(early),
        )
    return ""


def _stop_waits_for_every_worker(pool_class: PoolClass, workers: int, jobs: int = 20) -> str:
    """stop() returns only when every worker has exited: when it is called, each worker is held in a job
    of the grader's, and they are let go one at a time, the one stop() joins first (`_let_go_in_turn`);
    the end of each thread let go is held too, until stop() joins it or has returned (`hold_end`)."""
    stop = StopWatch()
    held = {_FIRST_HELD + n: _Held(stop) for n in range(workers)}
    _HELD.update(held)
    try:
        with _watching() as ran_in:
            return _stop_with_workers_held(pool_class, workers, jobs, list(held), ran_in, stop)
    finally:
        stop.over.set()  # no worker's end is held once the check is over
        for job in held:
            _HELD.pop(job).release()


def _stop_with_workers_held(
    pool_class: PoolClass,
    workers: int,
    jobs: int,
    held_jobs: list[int],
    ran_in: dict[int, ThreadMark],
    stop: StopWatch,
) -> str:
    before, before_ids = python_threads(), thread_ids()
    pool = pool_class(workers=workers)
    pool.start()
    for job in [*range(jobs), *held_jobs]:  # the held jobs last: each worker takes one when the rest are done
        pool.submit(job)
    started = python_threads() - before  # after the jobs: some pools start threads on demand
    if not started:
        return _("the pool ran no thread for {jobs} jobs", jobs=jobs)
    holds = [_HELD[job] for job in held_jobs]
    wait_until(lambda: all(h.taken.is_set() for h in holds), _HOLD_BOUND_S)
    for hold in holds:
        if not hold.taken.is_set():  # fewer workers than jobs held: this one holds nobody
            hold.release()
    seen: dict = {}

    def call() -> None:
        try:
            pool.stop()
        except BaseException as exc:  # raised again in the check's thread, which reports it
            seen["error"] = exc
        try:
            seen["running"] = _running_of_pool(started, ran_in, before_ids)  # the moment stop() returned
        finally:
            stop.over.set()  # a worker whose end was held (`hold_end`) may end now

    caller = threading.Thread(target=call, name="grader-stop", daemon=True)
    stop.caller = caller
    caller.start()
    _let_go_in_turn(caller, [h for h in holds if h.taken.is_set()])
    caller.join()
    if "error" in seen:
        raise seen["error"]
    if seen["running"]:
        return _(
            "stop() returned while {running} of its {started} workers were still running",
            running=seen["running"],
            started=max(len(started), seen["running"]),
        )
    return ""


def _let_go_in_turn(caller: threading.Thread, holds: list[_Held]) -> None:
    """Let the held workers go one at a time while `caller` is in stop(): at once the one it joins with
    no timeout, or the first when it waits for something else with no timeout; otherwise after _HOLD_S
    (a join with a short timeout has given up by then), or _LET_GO_S while it joins a worker already let
    go, which ends first: so a stop() that joins only some workers returns while the others are held."""
    since, let_go = time.monotonic(), []
    while caller.is_alive() and (holding := [h for h in holds if not h.released.is_set()]):
        waits_on, timed = blocked_on(caller)
        joined = next((h for h in holding if h.worker is waits_on), None)
        turn = joined if joined is not None and not timed else None
        if waits_on is FOREVER:
            turn = holding[0]
        if turn is None and time.monotonic() - since >= (_LET_GO_S if waits_on in let_go else _HOLD_S):
            turn = joined or holding[0]
        if turn is None:
            time.sleep(0.001)
            continue
        turn.release()
        since = time.monotonic()
        let_go.append(turn.worker)


def _every_job_accounted_for(pool_class: PoolClass, jobs: int, failing: tuple[int, ...] = ()) -> str:
    with _watching():
        return _account_for_every_job(pool_class, jobs, failing)


def _account_for_every_job(pool_class: PoolClass, jobs: int, failing: tuple[int, ...]) -> str:
    before = python_threads()
    pool = pool_class(workers=3)
    pool.start()
    submitted = [*range(jobs), -1, -2]  # two of them fail
    for place in failing:  # and, in drawn traffic, more, anywhere in the queue
        submitted.insert(place % len(submitted), -3 - len(submitted))
    for job in submitted:
        pool.submit(job)
    pool.stop()  # straight away: jobs still queued must be done or reported, not dropped
    _WATCHING.clear()  # the check's own calls of handle below are not the pool's
    # Threads running before the pool and still now: alive throughout, so no pool thread can share their id.
    others = {thread.ident for thread in alive(before)}
    outside = [job for job in submitted if job in _RAN_IN and _RAN_IN[job][0] in others]
    if outside:
        return _(
            "{outside} of {submitted} jobs were handled in a thread the pool did not start (the one that "
            "called submit(), say), such as {first}: submit() must queue each job for the pool's workers",
            outside=len(outside),
            submitted=len(submitted),
            first=outside[:5],
        )
    held = getattr(pool, "results", None)
    if not isinstance(held, dict):
        return _("results should be the pool's own dict; it is {kind}", kind=type(held).__name__)
    # Read with dict's own C code, as stop() left it: a subclass's methods cannot fill it in as it is read.
    results = dict(dict.items(held))
    missing = [job for job in submitted if job not in results]
    if missing:
        return _(
            "{missing} of {submitted} jobs submitted before stop() are missing from results: {first}",
            missing=len(missing),
            submitted=len(submitted),
            first=missing[:5],
        )
    unhandled = [job for job in submitted if job not in _RAN_IN]
    if unhandled:
        return _(
            "{unhandled} of {submitted} outcomes in results came from no handle() call made before stop() "
            "returned, such as {first}: each worker calls handle(job) and stores what it gives",
            unhandled=len(unhandled),
            submitted=len(submitted),
            first=unhandled[:5],
        )
    ours = set(submitted)
    others = [job for job in results if job not in ours]
    if others:  # the earlier checks' pools had other jobs: a results shared between pools holds them
        return _(
            "results holds {others} outcomes of jobs never submitted to this pool, such as {first}: "
            "each pool keeps its own results",
            others=len(others),
            first=others[:3],
        )
    wrong = [job for job in submitted if job >= 0 and results[job] != handle(job)]
    if wrong:
        return _("wrong results for jobs {jobs}", jobs=wrong[:5])
    unreported = [job for job in submitted if job < 0 and not isinstance(results[job], JobFailed)]
    if unreported:
        return _(
            "failed jobs {jobs} should be reported by their JobFailed, got {got}",
            jobs=unreported,
            got=[results[j] for j in unreported],
        )
    return ""


def _failure_keeps_worker(pool_class: PoolClass) -> str:
    """A failing job does not kill its worker: in a pool of one worker, the thread that ran a failing job
    runs the jobs after it (by the mark each job takes inside its thread, not by a `Thread` object) and is
    still running once they are done. Threads of the pool's own besides its workers (a collector, the
    helpers of `multiprocessing.pool.ThreadPool`) are no fault."""
    with _watching() as ran_in:
        return _failures_in_one_worker(pool_class, ran_in)


def _failures_in_one_worker(pool_class: PoolClass, ran_in: dict[int, ThreadMark]) -> str:
    before = thread_ids()
    pool = pool_class(workers=1)
    pool.start()
    try:
        jobs = (-1, 2, -3, 4, -5, 6)
        for job in jobs:
            pool.submit(job)
        done = wait_until(lambda: {2, 4, 6} <= set(getattr(pool, "results", {})), 1.5)
        if not done:
            return _("after a job failed, the pool's only worker did no more jobs: the failure killed it")
        ran = {job: ran_in[job] for job in jobs if job in ran_in}
        threads = {mark for mark in ran.values() if str(mark[1]) not in before}  # the pool's, not submit()'s
        if len(threads) > 1:
            return _(
                "the jobs of a pool of 1 worker, {failing} of them failing, ran in {threads} threads: each failure "
                "ended the thread that ran it; a worker must outlive a job that raises",
                failing=sum(job < 0 for job in jobs),
                threads=len(threads),
            )
        if threads and not running(threads):
            return _("the thread that ran a pool of 1 worker's jobs, some failing, no longer ran once they were done")
        return ""
    finally:
        pool.stop()


def _no_worker_survives(pool_class: PoolClass, batches: int, sizes: tuple[tuple[int, int], ...] = ()) -> str:
    before = thread_ids()
    sizes = sizes or ((4, 10),) * batches
    for batch, (workers, jobs) in enumerate(sizes):
        ours, our_ids = python_threads(), thread_ids()
        with _watching() as ran_in, pool_class(workers=workers) as pool:
            for job in range(batch, batch + jobs):
                pool.submit(job)
            started = python_threads() - ours  # after the jobs: some pools start threads on demand
        running = _running_of_pool(started, ran_in, our_ids)  # the moment the block is left: its workers joined
        if running:
            return _(
                "right after a pool's `with` block, {running} of its worker threads were still running",
                running=running,
            )
    problem = _left_by_an_exception(pool_class)
    if problem:
        return problem
    wait_until(lambda: not _new_threads(before))  # join() returns just before the OS removes a thread
    left = _new_threads(before)
    if left:
        return _(
            "after {pools} pools were used with `with` and left, {left} worker threads were still running",
            pools=len(sizes),
            left=len(left),
        )
    return ""


class _BlockFailed(Exception):
    """The check's own error, raised inside a pool's `with` block."""


def _left_by_an_exception(pool_class: PoolClass, workers: int = 3, jobs: int = 10) -> str:
    """A `with` block left by an exception stops its pool too, and lets the exception go on."""
    ours, our_ids, started = python_threads(), thread_ids(), set()
    try:
        with _watching() as ran_in, pool_class(workers=workers) as pool:
            for job in range(jobs):
                pool.submit(job)
            started = python_threads() - ours
            raise _BlockFailed
    except _BlockFailed:
        running = _running_of_pool(started, ran_in, our_ids)  # the moment the block is left: its workers joined
    else:
        return _("an exception raised in a pool's `with` block did not propagate: __exit__ swallowed it")
    if running:
        return _(
            "right after a pool's `with` block was left by an exception, {running} of its worker threads "
            "were still running: __exit__ must stop the pool whether or not the block raised",
            running=running,
        )
    return ""


def probe(
    pool_class: PoolClass,
    *,
    jobs: int = 600,  # submitted, then stop() at once: 200 ms of work for 3 workers
    batches: int = 5,
    workers: int = 4,
    backlog: int = 800,  # jobs queued before the workers are held and stop() is called: 200 ms of work
    failing: list[int] | None = None,
    sizes: list[list[int]] | None = None,
) -> tuple[Awaitable[object], Callable[[], dict]]:
    """The checks a grader runs against a pool class, and a summary of them (`traffic` draws the options)."""
    drawn_sizes = tuple((w, n) for w, n in sizes or ())
    checks, summary = Checks().in_thread(
        stop_waits_for_workers=lambda: (
            _stop_waits_for_every_worker(pool_class, workers, backlog) or _runs_its_workers(pool_class, workers)
        ),
        every_job_accounted_for=lambda: _every_job_accounted_for(pool_class, jobs, tuple(failing or ())),
        failure_keeps_worker=lambda: _failure_keeps_worker(pool_class),
        no_worker_survives=lambda: _no_worker_survives(pool_class, batches, drawn_sizes),
    )
    # A check that never finished waits in the pool: in a stop() or join() that waits for a worker that never ends.
    unfinished = _("a pool whose stop() or join() never returns: a worker that never ends?")
    return checks, lambda: {**summary(), "unfinished": unfinished}


def traffic(seed: int, *, jobs: int = 50, batches: int = 8) -> dict:
    """Hidden checks drawn by Hypothesis (leaklab.scenarios._traffic): a backlog of 150-250 jobs per
    worker before stop() (each job takes a millisecond), failing jobs anywhere in the queue, and pools of
    1-6 workers used for 0-30 jobs each, one of them for none."""
    from hypothesis import strategies as st

    from ._traffic import draw

    least = max(jobs, 600)
    options = draw(
        st.fixed_dictionaries(
            {
                "jobs": st.integers(least, least + 600),
                "workers": st.integers(2, 6),
                "backlog": st.integers(150, 250),  # jobs per worker: 150-250 ms of work queued for each
                "failing": st.lists(st.integers(0, 10**6), min_size=1, max_size=6),
                "sizes": st.lists(st.tuples(st.integers(1, 6), st.integers(0, 30)), min_size=batches, max_size=batches),
            }
        ),
        seed,
        lambda drawn: (
            batches < 2 or (min(n for _w, n in drawn["sizes"]) == 0 and max(n for _w, n in drawn["sizes"]) >= 10)
        ),
    )
    return {**options, "backlog": options["backlog"] * options["workers"], "sizes": [list(p) for p in options["sizes"]]}


# The scenario contract (leaklab.scenarios): the names an answer cell may use besides `asyncio`.
ANSWER = "Pool"  # the name the task has the answer cell bind, whatever object it binds there
ANSWER_NAMES = ("BUFFER_BYTES", "JobFailed", "handle", "queue", "threading")
# This lesson is about threads: files its pools leave to the cyclic collector are no leak here (the
# standard library's `multiprocessing.pool.ThreadPool` closes its wake-up pipe only when collected).
FILES_AFTER_COLLECTION = True
