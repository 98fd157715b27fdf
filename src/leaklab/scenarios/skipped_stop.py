"""Scenario 02, the skipped stop signal: a worker whose retry path never looks at its stop signal.

The article's Go worker selects on its stop channel and its job channel; when a call fails it logs,
sleeps and retries in an inner loop that never selects on the stop channel again. While the
dependency stays down, `Stop()` returns but the worker lives on, calling the failing dependency and
holding its memory. Its twin here is a thread; a second leaky flavour never blocks at all and spins.

Time is compressed: a millisecond here stands for a second in the article.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from ._checks import Checks, alive, busy_seconds, python_threads, thread_ids, wait_until

# Python's own export list (`import *`); the grader gives an answer cell ANSWER_NAMES, at the end.
__all__ = ["BUFFER_BYTES", "Dependency", "DependencyError", "queue", "threading", "time"]

BUFFER_BYTES = 256 * 1024  # DO NOT CHANGE: the working memory a worker holds while it runs


class DependencyError(Exception):
    """The downstream service failed this call."""


class Dependency:
    """A downstream service: `call(job)` returns `job * 2`, or raises DependencyError while it is down."""

    def __init__(self, *, down: bool = False) -> None:
        self._down = threading.Event()
        if down:
            self._down.set()
        self.calls = 0
        self.failures = 0

    def go_down(self) -> None:
        """Fail every call from now on."""
        self._down.set()

    def recover(self) -> None:
        """Answer every call from now on."""
        self._down.clear()

    def call(self, job: int) -> int:
        """Do the job, or fail while the service is down."""
        self.calls += 1
        if self._down.is_set():
            self.failures += 1
            raise DependencyError(f"dependency down (call {self.calls})")
        return job * 2


class LeakyWorker:
    """Takes jobs from a queue and calls the dependency, retrying failures; its retry path never
    looks at the stop signal, and `stop()` does not wait for the worker to end."""

    def __init__(self, jobs: queue.Queue[int], dependency: Dependency, *, backoff_s: float = 0.02) -> None:
        self.jobs, self.dependency, self.backoff_s = jobs, dependency, backoff_s
        self.errors = 0
        self.results: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leaky-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        self._stop.set()
        return True  # it says the worker stopped; it has not looked

    def _run(self) -> None:
        buffer = bytearray(BUFFER_BYTES)  # working memory, held for as long as this thread runs
        while not self._stop.is_set():
            try:
                job = self.jobs.get(timeout=0.01)
            except queue.Empty:
                continue
            while True:  # the retry loop: it never looks at self._stop
                try:
                    self.results.append(self.dependency.call(job))
                    buffer[0] = job % 256
                    break
                except DependencyError:
                    self.errors += 1
                    time.sleep(self.backoff_s)


class SpinningWorker(LeakyWorker):
    """The other way to get it wrong: a stop check in every turn, but a turn that never blocks."""

    def stop(self, timeout: float = 1.0) -> bool:
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.jobs.get_nowait()  # Go's `default:` branch: nothing to do, so go round again
            except queue.Empty:
                continue
            try:
                self.results.append(self.dependency.call(job))
            except DependencyError:
                self.errors += 1


# --- measuring a thread's appetite for CPU --------------------------------------------------------


# --- the traffic: workers started and stopped while the dependency is down ------------------------

WorkerClass = Callable[..., object]


def restart_while_down(
    worker_class: WorkerClass, cycles: int = 8, *, every_s: float = 0.015, backoff_s: float = 0.02
) -> Dependency:
    """A worker restarted `cycles` times, one every `every_s` (a config reload, say), while its
    dependency is down. Each worker is stopped once its job has failed; returns the dependency, still down.
    """
    dependency = Dependency(down=True)
    for cycle in range(cycles):
        time.sleep(every_s)
        jobs: queue.Queue[int] = queue.Queue()
        worker = worker_class(jobs, dependency, backoff_s=backoff_s)
        worker.start()
        failures = dependency.failures
        jobs.put(cycle)
        wait_until(lambda: dependency.failures > failures)  # noqa: B023 - used at once
        worker.stop()
    return dependency


async def leaky_rounds(rounds: int = 10) -> AsyncIterator[str]:
    """The leak for `leaklab run`: four restarts of the leaky worker per round, the dependency down."""
    for _ in range(rounds):
        dependency = restart_while_down(LeakyWorker, cycles=4)
        yield f"4 workers stopped while the dependency is down ({dependency.failures} failed calls)"


# --- grading: what a fresh process runs against the learner's worker -------------------------------


def _stop_while_failing(worker_class: WorkerClass, backoff_s: float, waiting: int = 0) -> str:
    dependency, jobs = Dependency(down=True), queue.Queue()
    before = thread_ids()
    worker = worker_class(jobs, dependency, backoff_s=backoff_s)
    worker.start()
    workers_threads = thread_ids() - before
    workers = [t for t in python_threads() if str(t.native_id) in workers_threads]
    jobs.put(1)
    if not wait_until(lambda: dependency.failures >= 1):
        return "the worker never called the dependency"
    for more in range(waiting):  # jobs queued behind the failing one, which the dependency cannot do either
        jobs.put(2 + more)
    started = time.monotonic()  # the worker is now in its back-off
    stopped = worker.stop()
    took = time.monotonic() - started
    if alive(workers):  # asked the moment stop() returns: a stop() that only signals leaves it running
        return f"stop() returned {stopped!r} while the worker's thread was still running: it must wait for it"
    # join() returns a moment before the operating system has removed the thread: allow for that.
    if not wait_until(lambda: not workers_threads & thread_ids(), 0.5):
        return f"stop() returned {stopped!r} after {took:.2f} s, but the worker's thread was still running"
    if took > min(1.0, backoff_s / 2):
        return f"stop() took {took:.2f} s with a {backoff_s:g} s back-off: the retry path slept through the stop"
    if stopped is not True:
        return f"stop() returned {stopped!r} although the worker had ended"
    return ""


def _counts_errors(worker_class: WorkerClass, backoff_s: float) -> str:
    dependency, jobs = Dependency(down=True), queue.Queue()
    worker = worker_class(jobs, dependency, backoff_s=backoff_s)
    worker.start()
    try:
        for job in range(5):
            jobs.put(job)
        if not wait_until(lambda: dependency.failures >= 5):
            return f"the worker called the failing dependency {dependency.failures} times, then stopped trying"
        if not wait_until(lambda: getattr(worker, "errors", 0) >= dependency.failures - 1, 1.0):
            return f"worker.errors is {getattr(worker, 'errors', None)!r} after {dependency.failures} failed calls"
        return ""
    finally:
        dependency.recover()  # so that even a worker that cannot be stopped ends after this check
        worker.stop()


def _backs_off(worker_class: WorkerClass, backoff_s: float, window_s: float) -> str:
    dependency, jobs = Dependency(down=True), queue.Queue()
    worker = worker_class(jobs, dependency, backoff_s=backoff_s)
    worker.start()
    try:
        jobs.put(1)
        time.sleep(window_s)
        # A worker that waits `backoff_s` between tries makes window/backoff calls at most; one that
        # does not back off makes thousands. Ten times the expected count leaves a wide margin.
        limit = 10 * (window_s / backoff_s + 1)
        if dependency.calls > limit:
            return (
                f"{dependency.calls} calls in {window_s:g} s with a {backoff_s:g} s back-off: failed calls are retried "
                "without waiting"
            )
        return ""
    finally:
        dependency.recover()
        worker.stop()


def _idle_without_spinning(worker_class: WorkerClass, window_s: float) -> str:
    worker = worker_class(queue.Queue(), Dependency(), backoff_s=0.02)
    mine = {threading.main_thread().native_id, threading.get_native_id()}
    worker.start()
    try:
        time.sleep(0.02)
        before = busy_seconds(exclude=mine)
        time.sleep(window_s)
        share = (busy_seconds(exclude=mine) - before) / window_s
        if share > 0.25:
            return f"with nothing to do, the worker kept a CPU busy {share:.0%} of the time: it spins"
        return ""
    finally:
        worker.stop()


def _work_gets_done(worker_class: WorkerClass, jobs_count: int, values: tuple[int, ...] = (), down_for: int = 3) -> str:
    dependency, jobs = Dependency(down=True), queue.Queue()
    worker = worker_class(jobs, dependency, backoff_s=0.005)
    worker.start()
    values = values or tuple(range(jobs_count))
    try:
        for job in values:
            jobs.put(job)
        wait_until(lambda: dependency.failures >= down_for)
        dependency.recover()  # jobs that failed while it was down must still be done
        expected = [job * 2 for job in values]
        wait_until(lambda: len(getattr(worker, "results", [])) >= len(values))
        results = list(getattr(worker, "results", []))
        if results != expected:
            return f"after the dependency recovered, worker.results was {results[:8]!r}, expected {expected[:8]!r}"
        return ""
    finally:
        worker.stop()


def probe(
    worker_class: WorkerClass,
    *,
    backoff_s: float = 2.0,
    jobs: int = 6,
    idle_window_s: float = 0.3,
    values: list[int] | None = None,
    down_for: int = 3,
    waiting: int = 0,
) -> tuple[Awaitable[object], Callable[[], dict]]:
    """The checks a grader runs against a worker class, and a summary of them (`traffic` draws the options)."""
    return Checks().in_thread(  # the check that may leave a worker running forever comes last
        idle_without_spinning=lambda: _idle_without_spinning(worker_class, idle_window_s),
        counts_errors=lambda: _counts_errors(worker_class, 0.005) or _backs_off(worker_class, 0.05, 0.3),
        work_gets_done=lambda: _work_gets_done(worker_class, jobs, tuple(values or ()), down_for),
        stops_promptly=lambda: _stop_while_failing(worker_class, backoff_s, waiting),
    )


def traffic(seed: int, *, backoff_s: float = 3.0, jobs: int = 10, idle_window_s: float = 0.4) -> dict:
    """Hidden checks drawn by Hypothesis (leaklab.scenarios._traffic): jobs of any values in any order
    (their results must come back in that order), a dependency down for 1-8 failed calls before it
    recovers, and a stop() that comes in the back-off of a worker stuck on its first job, with 0-5 jobs
    queued behind it, with a back-off of 2-6 s (a retry path that sleeps through the stop takes that long)."""
    from hypothesis import strategies as st

    from ._traffic import draw

    options = draw(
        st.fixed_dictionaries(
            {
                "values": st.lists(
                    st.integers(-1000, 1000), min_size=max(3, jobs // 2), max_size=jobs * 2, unique=True
                ),
                "down_for": st.integers(1, 8),
                "waiting": st.integers(0, 5),
                "backoff_s": st.sampled_from((2.0, 2.5, 3.0, 4.0, 5.0, 6.0)),
            }
        ),
        seed,
        lambda drawn: drawn["values"] != sorted(drawn["values"]),
    )
    return {**options, "idle_window_s": idle_window_s}


# The scenario contract (leaklab.scenarios): the names an answer cell may use besides `asyncio`.
ANSWER_NAMES = ("BUFFER_BYTES", "Dependency", "DependencyError", "queue", "threading", "time")
