"""Scenario 02, the skipped stop signal: a worker whose retry path never looks at its stop signal.

The article's Go `worker(stopCh)` selects on its stop channel with a `default:` branch that does the
work, and on an error logs and `continue`s. Run as printed it stops at once (the `continue` goes back to
the `select`) but never blocks: it spins. `article_worker` is its twin, line for line, and
`run_article_worker` runs it. The leak this lesson teaches is the variant where the error path waits: a
retry that sleeps without looking at the stop signal (`LeakyWorker`). While the dependency stays down,
`stop()` returns but the worker lives on, calling the failing dependency and holding its memory.

Time is compressed: a millisecond here stands for a second in the article.
"""

from __future__ import annotations

import bisect
import contextlib
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from statistics import median
from types import FrameType

from .._i18n import _, ngettext
from ._checks import (
    CONDITION_NOTIFY,
    CONDITION_WAIT,
    PROMPT_AT_S,
    Checks,
    alive,
    busy_seconds,
    cpu_seconds,
    python_threads,
    slow_at_most,
    thread_ids,
    wait_until,
)

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


# --- the article's worker, as printed ---------------------------------------------------------------


def article_worker(
    stop: threading.Event,
    do_work: Callable[[], object],
    process_result: Callable[[object], None],
    log: Callable[[str], None],
) -> None:
    """The article's `worker(stopCh)`, turn for turn: a `select` with a `default:` branch looks at the
    stop signal without waiting for anything, then does the work; an error is logged and `continue`
    goes round again, back to the stop check."""
    while True:  # for {
        if stop.is_set():  # select { case <-stopCh: return
            return
        try:  # default: result, err := doWork()
            result = do_work()
        except DependencyError as error:  # if err != nil {
            log(f"work failed: {error}")
            continue  # back to the top of the loop, and so to the stop check
        process_result(result)


@dataclass
class ArticleRun:
    """What `run_article_worker` saw: how often the loop went round, its CPU share, how fast it stopped."""

    window_s: float
    calls: int
    logged: int
    busy_share: float
    stop_s: float
    ended: bool

    def __str__(self) -> str:
        window_ms = self.window_s * 1000
        ending = (
            _("it returned {ms:.2f} ms after the stop signal was set", ms=self.stop_s * 1000)
            if self.ended
            else _("it was still running {s:.1f} s after the stop signal was set", s=self.stop_s)
        )
        return "\n".join(
            [
                _("the article's worker, its doWork failing at once, for {ms:.0f} ms:", ms=window_ms),
                "  "
                + _(
                    "doWork called {calls:,} times, {logged:,} log lines written: {rate} a second",
                    calls=self.calls,
                    logged=self.logged,
                    rate=_rate(self.calls / self.window_s),
                ),
                "  " + _("its thread ran or waited for a CPU {share:.0%} of the time", share=self.busy_share),
                f"  {ending}",
            ]
        )


def _rate(per_second: float) -> str:
    return _("{millions:.1f} million", millions=per_second / 1e6) if per_second >= 1e6 else f"{per_second:,.0f}"


def run_article_worker(window_s: float = 0.05) -> ArticleRun:
    """Run `article_worker` in a thread while its dependency is down (every `doWork` fails at once),
    then set its stop signal: count its turns and its CPU share, and time how long it takes to end.
    The log lines are counted, not printed: printed, they would flood the notebook."""
    dependency = Dependency(down=True)
    logged = 0

    def log(line: str) -> None:
        nonlocal logged
        logged += 1

    stop = threading.Event()
    thread = threading.Thread(
        target=article_worker, args=(stop, lambda: dependency.call(1), lambda result: None, log), name="article-worker"
    )
    thread.start()
    mine = {thread.native_id}
    began, busy_before = time.monotonic(), busy_seconds(only=mine)
    calls_before, logged_before = dependency.calls, logged
    time.sleep(window_s)
    busy, calls, lines = busy_seconds(only=mine) - busy_before, dependency.calls - calls_before, logged - logged_before
    window = time.monotonic() - began  # the sleep may last longer than asked on a busy machine
    stopped = time.monotonic()
    stop.set()
    thread.join(1.0)
    took = time.monotonic() - stopped
    return ArticleRun(window, calls, lines, busy / window, took, not thread.is_alive())


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


# --- the traffic: workers started and stopped while the dependency is down ------------------------

WorkerClass = Callable[..., object]


@dataclass
class Restarts:
    """What each `stop()` of `restart_while_down` did, and two counts a `Recorder` samples meanwhile
    (`Recorder(label, counts=restarts.counts)`): the half-fixes that a thread count alone hides."""

    backoff_s: float = 0.0
    dependency: Dependency | None = None  # the failing dependency, once the restarts have begun
    took_s: list[float] = field(default_factory=list)  # how long each stop() took to return
    said: list[object] = field(default_factory=list)  # what each stop() returned
    running_at_return: list[bool] = field(default_factory=list)  # its worker's thread alive as stop() returned
    stopped: list[threading.Thread] = field(default_factory=list)  # the threads of the workers asked to stop

    def stopped_still_running(self) -> int:
        """Workers asked to stop whose thread is still running, now."""
        return len(alive(list(self.stopped)))

    def running_when_stop_returned(self) -> int:
        """So far, the stop() calls that returned while their worker's thread still ran."""
        return sum(self.running_at_return)

    def end_outage(self) -> None:
        """The dependency answers again: a worker deaf to stop() finishes its job, then sees the stop."""
        if self.dependency is not None:
            self.dependency.recover()

    @property
    def counts(self) -> dict[str, Callable[[], int]]:
        return {
            "asked to stop, still running": self.stopped_still_running,
            "still running as stop() returned": self.running_when_stop_returned,
        }

    def summary(self) -> str:
        """The stops in a few lines: how long they took, what they said, whether the worker had ended."""
        if not self.took_s:
            return _("no worker was stopped")
        stops, took_ms = len(self.took_s), sorted(t * 1000 for t in self.took_s)
        said = {repr(value): self.said.count(value) for value in self.said}
        returned = ", ".join(
            ngettext("{value} {n} time", "{value} {n} times", n, value=value) for value, n in said.items()
        )
        return "\n".join(
            [
                ngettext(
                    "{n} restart during the outage, each worker stopped in its {backoff:.0f} ms back-off:",
                    "{n} restarts during the outage, each worker stopped in its {backoff:.0f} ms back-off:",
                    stops,
                    backoff=self.backoff_s * 1000,
                ),
                "  "
                + _(
                    "stop() took {median:.1f} ms (median), {most:.1f} ms at the most",
                    median=median(took_ms),
                    most=took_ms[-1],
                ),
                "  " + _("stop() returned {times}", times=returned),
                "  "
                + _(
                    "the worker was still running as stop() returned: {running} of {stops}",
                    running=self.running_when_stop_returned(),
                    stops=stops,
                ),
                "  "
                + _("workers asked to stop and still running now: {running}", running=self.stopped_still_running()),
            ]
        )


def restart_while_down(
    worker_class: WorkerClass,
    cycles: int = 8,
    *,
    every_s: float = 0.015,
    backoff_s: float = 0.05,
    into_backoff_s: float = 0.003,
    restarts: Restarts | None = None,
) -> Dependency:
    """A worker restarted `cycles` times, one every `every_s` (a config reload, say), while its
    dependency is down. Each worker takes a job, the job fails, and `into_backoff_s` later, while the
    worker waits out its back-off, it is stopped; `restarts` (if given) records what each stop() did.
    Returns the dependency, still down."""
    dependency = Dependency(down=True)
    if restarts is not None:
        restarts.backoff_s, restarts.dependency = backoff_s, dependency
    for cycle in range(cycles):
        time.sleep(every_s)
        jobs: queue.Queue[int] = queue.Queue()
        worker = worker_class(jobs, dependency, backoff_s=backoff_s)
        before = python_threads()
        worker.start()
        threads = list(python_threads() - before)
        failures = dependency.failures
        jobs.put(cycle)
        wait_until(lambda: dependency.failures > failures)  # noqa: B023 - used at once
        time.sleep(into_backoff_s)  # the worker is in its back-off now
        if restarts is not None:
            restarts.stopped.extend(threads)
        started = time.monotonic()
        said = worker.stop()
        took = time.monotonic() - started
        if restarts is not None:  # asked the moment stop() returns
            restarts.running_at_return.append(bool(alive(threads)))
            restarts.took_s.append(took)
            restarts.said.append(said)
    return dependency


async def leaky_rounds(rounds: int = 10) -> AsyncIterator[str]:
    """The leak for `leaklab run`: four restarts of the leaky worker per round, the dependency down."""
    for _round in range(rounds):
        dependency = restart_while_down(LeakyWorker, cycles=4)
        yield _("4 workers stopped while the dependency is down ({failed} failed calls)", failed=dependency.failures)


# --- grading: what a fresh process runs against the learner's worker -------------------------------


def _started(worker: object) -> tuple[list[threading.Thread], set[str]]:
    """Start `worker`; the threads its start() began, and their operating system's ids. They are told
    apart by those ids, each as its thread noted it when it started: a subclass's `native_id` cannot
    answer for it."""
    before = thread_ids()
    worker.start()  # type: ignore[attr-defined]
    began = thread_ids() - before
    threads = [t for t in python_threads() if str(object.__getattribute__(t, "__dict__").get("_native_id")) in began]
    return threads, began


def _stopped(worker: object, threads: list[threading.Thread]) -> str:
    """Stop `worker` and ask, the moment stop() returns, whether a thread its start() began still runs:
    every worker a check makes, busy or idle, the first of the process or the last."""
    stopped = worker.stop()  # type: ignore[attr-defined]
    if alive(threads):
        return _(
            "stop() returned {stopped!r} while the worker's thread was still running: it must wait for it",
            stopped=stopped,
        )
    return ""


def _checked(worker: object, dependency: Dependency, judge: Callable[[], str], stops: list[str]) -> str:
    """Start `worker`, judge it, then stop it with the dependency up (so that even a worker deaf to stop()
    ends): what `judge` found. Whether that stop() left a thread running goes into `stops`, for the
    property it breaks (stops promptly) to report."""
    threads = _started(worker)[0]
    try:
        return judge()
    finally:
        dependency.recover()
        if left := _stopped(worker, threads):
            stops.append(left)


# A `time.sleep` in a back-off may ask for 10 ms at most, whatever the back-off: stop() is heard only when
# the sleep in progress ends. The length asked for, which load cannot change: a state, not a duration. 10 ms
# is half the default back-off (a learner's `time.sleep(0.01)` slices pass; so did every shorter slice).
_SLICE_S = 0.01
# How long stop() may take in the middle of a long (2-6 s) back-off that does not sleep in `time.sleep`
# (slices of an Event the worker made itself, say): a clock, so far from both sides. A right stop() takes
# milliseconds, a few tens on a loaded machine; a wait in slices of 0.4 x the back-off takes 0.8 s or more.
_STOP_BOUND_S = 0.5
_STOP_TIMEOUT_S = 1.0  # stop()'s default timeout, as the task gives it


def _stop_while_failing(worker_class: WorkerClass, backoff_s: float, waiting: int = 0) -> str:
    """Stop a worker in the middle of a long back-off, with jobs queued behind the failing one: its thread
    has ended when stop() returns, which says True; the back-off heard the stop signal (no `time.sleep`
    of more than `_SLICE_S`, and stop() well within `_STOP_BOUND_S`); every job it never tried is still
    queued."""
    dependency, jobs = _RecordingDependency(down=True), queue.Queue()
    put = [1, *range(2, 2 + waiting)]  # jobs queued behind the failing one, which the dependency cannot do either
    for job in put:  # queued before the worker starts: a worker that takes more than one job at once does
        jobs.put(job)
    before = set(threading.enumerate())  # the grader's threads: the worker's sleeps are the others'
    worker = worker_class(jobs, dependency, backoff_s=backoff_s)
    with _Sleeps(worker_class, noted=lambda: dependency.failures > 0) as sleeps, _Wakes() as wakes:
        workers, workers_threads = _started(worker)
        if not wait_until(lambda: dependency.failures >= 1):
            return _("the worker never called the dependency")
        started = time.monotonic()  # the worker is now in its back-off
        with wakes.stopping():
            stopped = worker.stop()
        took = time.monotonic() - started
        running = bool(alive(workers))  # asked the moment stop() returns
    slept = sleeps.longest(besides=before)  # the sleeps from its first failure on: in a back-off
    # stop() waited its whole timeout (load only makes that longer) and said so: the thread never heard the stop.
    if running and stopped is False and took >= 0.9 * _STOP_TIMEOUT_S:
        if slept > _SLICE_S:
            return _(
                "with backoff_s={backoff:g}, stop() waited its timeout and returned False: the worker's thread "
                "was still in its back-off, a time.sleep({slept:g}) that does not hear the stop signal (wait on "
                "the stop signal with a timeout, or sleep in slices of {slice:g} s at most that look at it)",
                backoff=backoff_s,
                slept=slept,
                slice=_SLICE_S,
            )
        return _(
            "with backoff_s={backoff:g}, stop() waited its timeout and returned False: the worker's thread was "
            "still retrying its failing job: its back-off or its retry loop does not hear the stop signal (wait "
            "on the stop signal with a timeout, and look at it before each retry)",
            backoff=backoff_s,
        )
    if running:  # a stop() that only signals leaves it running
        return _(
            "stop() returned {stopped!r} while the worker's thread was still running: it must wait for it",
            stopped=stopped,
        )
    # join() returns a moment before the operating system has removed the thread: allow for that.
    if not wait_until(lambda: not workers_threads & thread_ids(), 0.5):
        return _(
            "stop() returned {stopped!r} after {took:.2f} s, but the worker's thread was still running",
            stopped=stopped,
            took=took,
        )
    if slept > _SLICE_S:
        return _(
            "with backoff_s={backoff:g}, the worker's back-off slept in time.sleep({slept:g}): stop() cannot cut "
            "a sleep short, so it is heard only when the sleep ends (wait on the stop signal with a timeout, or "
            "sleep in slices of {slice:g} s at most that look at it)",
            backoff=backoff_s,
            slept=slept,
            slice=_SLICE_S,
        )
    if (sliced := wakes.longest_unwoken()) > _SLICE_S:
        return _(
            "with backoff_s={backoff:g}, the worker's back-off waited in slices of {sliced:g} s on something "
            "stop() does not wake: it is heard only when the slice in progress ends (wait on the stop signal "
            "itself, or in slices of {slice:g} s at most)",
            backoff=backoff_s,
            sliced=sliced,
            slice=_SLICE_S,
        )
    if took > _STOP_BOUND_S and wakes.heard:  # the back-off was woken by the stop: what took long was stop()'s
        return _(
            "stop() took {took:.2f} s, though the worker's back-off was woken by the stop signal: stop() itself "
            "waited longer than the worker took to end (wait for the thread with join, timeout as its bound)",
            took=took,
        )
    if took > _STOP_BOUND_S:
        return _(
            "stop() took {took:.2f} s with a {backoff:g} s back-off: the retry path slept through the stop",
            took=took,
            backoff=backoff_s,
        )
    if stopped is not True:
        return _("stop() returned {stopped!r} although the worker had ended", stopped=stopped)
    # Asked once stop() has returned: a job the dependency was never asked to do was not failing at the
    # stop, so it must still be in the queue (a job dropped after it failed is `work_gets_done`'s).
    left = _left_in(jobs)
    if dropped := [job for job in put if job not in dependency.tried and job not in left]:
        return _(
            "stop() dropped jobs never tried: {dropped!r}, neither called nor still in jobs "
            "(only a job still failing when stop() is called may be abandoned)",
            dropped=dropped,
        )
    return ""


_SLEEP = time.sleep  # bound when the scenario is imported, before an answer runs


class _Sleeps:
    """While in use, `time.sleep` notes the thread of each call made while `noted()` is true and how long
    it was asked to sleep, then sleeps: also where the answer's code bound it to a name of its own (`from
    time import sleep`). The length asked for, not the time it took: load makes a sleep longer, never
    what it asked for."""

    def __init__(self, worker_class: WorkerClass, noted: Callable[[], bool]) -> None:
        self.slept: list[tuple[threading.Thread, float]] = []
        self._noted = noted
        functions = [f for cls in getattr(worker_class, "__mro__", ()) for v in vars(cls).values() for f in _behind(v)]
        answers = {id(f.__globals__): f.__globals__ for f in functions if not _is_a_module(f.__globals__)}
        self._namespaces = [vars(time), *answers.values()]  # not threading's, say, for a Thread subclass
        self._rebound: list[tuple[dict, str]] = []

    def _sleep(self, seconds: float) -> None:
        if isinstance(seconds, int | float) and self._noted():  # anything else, time.sleep refuses
            self.slept.append((threading.current_thread(), float(seconds)))
        _SLEEP(seconds)

    def __enter__(self) -> _Sleeps:
        for namespace in self._namespaces:
            for name in [name for name, value in namespace.items() if value is _SLEEP]:
                namespace[name] = self._sleep
                self._rebound.append((namespace, name))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for namespace, name in self._rebound:
            namespace[name] = _SLEEP

    def longest(self, *, besides: set[threading.Thread]) -> float:
        """The longest sleep a thread not in `besides` asked for (0 if none slept)."""
        return max((seconds for thread, seconds in self.slept if thread not in besides), default=0.0)


def _is_a_module(namespace: dict) -> bool:
    """Whether `namespace` is an imported module's own (the answer cell's is `__main__`'s, or its own dict)."""
    name = namespace.get("__name__", "")
    return name != "__main__" and name in sys.modules and vars(sys.modules[name]) is namespace


def _behind(value: object) -> list[Callable]:
    """The Python functions behind a class attribute (a method, a static or class method, a property)."""
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    if isinstance(value, property):
        return [f for f in (value.fget, value.fset, value.fdel) if hasattr(f, "__globals__")]
    return [value] if hasattr(value, "__globals__") else []


class _Wakes:
    """While in use, a profile hook in the threads started meanwhile notes each threading wait (a
    `Condition.wait`, what every threading wait is) in progress when `stopping()` began that then ended
    by its timeout; inside `stopping()`, the hook in the calling thread notes the Conditions it woke. A
    wait of more than `_SLICE_S` that stop() did not wake is a slice stop() cannot cut short."""

    def __init__(self) -> None:
        self.timed_out: list[tuple[threading.Condition, float]] = []  # each with the timeout it asked for
        self.woken: list[threading.Condition] = []
        self.heard = False  # a wait in progress at the stop ended woken, after stop() was called
        self._waiting: set[FrameType] = set()  # waits that began before the stop
        self._stopping = False
        self._previous = threading.getprofile()

    def __enter__(self) -> _Wakes:
        threading.setprofile(self._hook)
        return self

    def __exit__(self, *exc_info: object) -> None:
        threading.setprofile(self._previous)

    @contextlib.contextmanager
    def stopping(self) -> Iterator[None]:
        """Around the call of stop(): from here on a wait that begins is not the back-off stop() came in."""
        self._stopping, previous = True, sys.getprofile()
        sys.setprofile(self._notes_wakes)
        try:
            yield
        finally:
            sys.setprofile(previous)

    def _notes_wakes(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is CONDITION_NOTIFY:
            self.woken.append(frame.f_locals["self"])

    def _hook(self, frame: FrameType, event: str, arg: object) -> None:
        if frame.f_code is not CONDITION_WAIT:
            return
        if event == "call" and not self._stopping:
            self._waiting.add(frame)
        elif event == "return" and frame in self._waiting:
            self._waiting.discard(frame)
            timeout = frame.f_locals.get("timeout")
            # Ended after stop() was called: a back-off that ran out before it (a checker held up by load) is none.
            if arg is False and self._stopping and isinstance(timeout, int | float):
                self.timed_out.append((frame.f_locals["self"], float(timeout)))
            self.heard |= arg is True and self._stopping

    def longest_unwoken(self) -> float:
        """The longest timeout of a wait in progress at the stop that ended by it, on a Condition stop() did
        not wake (0 if none): a wait on the stop signal itself is woken, even at the end of its timeout."""
        return max((t for c, t in self.timed_out if all(c is not w for w in self.woken)), default=0.0)


def _no_sleep_in_backoff(worker_class: WorkerClass, backoff_s: float, backoffs: int = 2) -> str:
    """At a short back-off, the worker's thread waits out `backoffs` whole back-offs, then is stopped:
    a back-off slept in `time.sleep` (a sleep of more than half a back-off) is deaf to stop(), however
    short. Short slices between looks at the stop signal are fine."""
    dependency, jobs = Dependency(down=True), queue.Queue()
    for job in range(1, backoffs + 2):  # so that a worker that drops failed jobs does not keep this waiting
        jobs.put(job)
    before = set(threading.enumerate())  # the grader's threads: the worker's sleeps are the others'
    worker = worker_class(jobs, dependency, backoff_s=backoff_s)
    with _Sleeps(worker_class, noted=lambda: dependency.failures > 0) as sleeps:  # in a back-off from then on
        threads = _started(worker)[0]
        try:
            # A state, not a pause: the call after a back-off comes once that whole back-off was waited out.
            wait_until(lambda: dependency.failures > backoffs)
        finally:
            left = _stopped(worker, threads)
            dependency.recover()  # so that even a worker deaf to stop() ends
    longest = sleeps.longest(besides=before)
    if longest > backoff_s / 2:
        return _(
            "with backoff_s={backoff:g}, the worker's thread slept in time.sleep({slept:g}): stop() cannot cut "
            "that short, so it waits out most of a back-off (wait on the stop signal with a timeout, or sleep "
            "in short slices that look at it)",
            backoff=backoff_s,
            slept=longest,
        )
    return left


_PROMPT_BACKOFF_S = 0.6  # the back-off stop() is called early in, at each of `PROMPT_AT_S` after a failure


def _stops_at_once(worker_class: WorkerClass) -> str:
    """Stop a worker early in its back-off, at each of `PROMPT_AT_S` after its first failed call: stop()
    must not be slow at most of them (`slow_at_most`), and its thread must have ended when it returns."""
    took = []
    for at_s in PROMPT_AT_S:
        dependency, jobs = Dependency(down=True), queue.Queue()
        jobs.put(1)
        worker = worker_class(jobs, dependency, backoff_s=_PROMPT_BACKOFF_S)
        threads = _started(worker)[0]
        try:
            if not wait_until(lambda down=dependency: down.failures >= 1):
                return _("the worker never called the dependency")
            _SLEEP(at_s)  # the grader's own wait: bound before the answer ran
            began = time.monotonic()
            if left := _stopped(worker, threads):
                return left
            took.append(time.monotonic() - began)
        finally:
            dependency.recover()  # so that even a worker deaf to stop() ends
    if slow := slow_at_most(took):
        return _(
            "with backoff_s={backoff:g}, stop() called early in a back-off took {took} s: it waited for most "
            "of what was left of the back-off (a sleep, or a slice of something stop() does not wake), or "
            "waited before it signalled; a stop() that wakes the back-off returns at once",
            backoff=_PROMPT_BACKOFF_S,
            took=slow,
        )
    return ""


class _HeldDependency(Dependency):
    """A dependency whose calls answer only once the check releases them (or after `bound_s`), and that
    notes each job it was asked to do."""

    def __init__(self, bound_s: float) -> None:
        super().__init__()
        self.bound_s = bound_s
        self.entered, self.released = threading.Event(), threading.Event()
        self.callers: list[threading.Thread] = []  # the threads that made a call
        self.tried: set[int] = set()
        self.held: int | None = None  # the job of the first call, the one stop() comes in the middle of
        self.outwaited = False  # a call returned at its bound, not released: stop() waited that long

    def call(self, job: int) -> int:
        self.callers.append(threading.current_thread())
        self.tried.add(job)
        if self.held is None:
            self.held = job
        self.entered.set()
        self.outwaited = not self.released.wait(self.bound_s)
        return super().call(job)


def _left_in(jobs: queue.Queue) -> list[object]:
    """What is still in `jobs`, taken out."""
    left = []
    with contextlib.suppress(queue.Empty):
        while True:
            left.append(jobs.get_nowait())
    return left


def _stop_during_a_call(
    worker_class: WorkerClass, *, failing: bool = False, waiting: int = 2, timeout_s: float = 0.05, bound_s: float = 5.0
) -> str:
    """Stop a worker while its thread is held in a dependency call (one that succeeds, or with `failing`
    one that fails), with `waiting` jobs queued behind it, released only once stop() has returned: the
    thread cannot end within the timeout, so stop() must say False; then, released, a stop() with room
    must say True, its thread ended, every job it never called still in the queue, and the result of a call
    that succeeded in `results` (only a job still failing at the stop may be abandoned)."""
    dependency, jobs = _HeldDependency(bound_s), queue.Queue()
    if failing:
        dependency.go_down()
    put = [1, *range(2, 2 + waiting)]
    for job in put:
        jobs.put(job)
    worker = worker_class(jobs, dependency, backoff_s=0.01)
    worker.start()
    try:
        if not dependency.entered.wait(bound_s):
            return _("the worker never called the dependency")
        workers = list(dependency.callers)
        held = worker.stop(timeout=timeout_s)
        running = bool(alive(workers))  # asked the moment stop() returns, before the call is released
        if dependency.outwaited:
            return _(
                "stop(timeout={timeout:g}) returned only when the call in progress ended, {bound:g} s later",
                timeout=timeout_s,
                bound=bound_s,
            )
        if running and held is not False:
            return _(
                "stop(timeout={timeout:g}) returned {stopped!r} while the worker's thread was still in a call: "
                "it must return whether the thread ended",
                timeout=timeout_s,
                stopped=held,
            )
        dependency.released.set()
        stopped = worker.stop(timeout=bound_s)
        if alive(workers):
            return _(
                "once its call returned, stop(timeout={timeout:g}) returned {stopped!r} with the thread still running",
                timeout=bound_s,
                stopped=stopped,
            )
        if stopped is not True:
            return _("stop() returned {stopped!r} although the worker had ended", stopped=stopped)
        left = _left_in(jobs)  # asked once stop() has returned; only the job in the call may be gone
        if (dropped := [job for job in put if job not in dependency.tried and job not in left]) and failing:
            return _(
                "stop() during a call that failed, with jobs queued behind it, dropped jobs never tried: "
                "{dropped!r}, neither called nor still in jobs (only a job still failing when stop() is called "
                "may be abandoned)",
                dropped=dropped,
            )
        if dropped:
            return _(
                "stop() during a call that succeeded, with jobs queued behind it, dropped jobs never tried: "
                "{dropped!r}, neither called nor still in jobs (only a job still failing when stop() is called "
                "may be abandoned)",
                dropped=dropped,
            )
        # The call stop() came in the middle of was not failing: released, the dependency answers it, and
        # its result must be kept (asked once the worker has ended, so every append it made is in).
        results = list(getattr(worker, "results", []))
        if not failing and dependency.held * 2 not in results:
            return _(
                "stop() came during a call that then succeeded (job {job!r}), and once the worker had ended its "
                "result {result!r} was not in worker.results ({results!r}): a job not failing when stop() is "
                "called must be done and its result kept (only a job still failing then may be abandoned)",
                job=dependency.held,
                result=dependency.held * 2,
                results=results[:8],
            )
        return ""
    finally:
        dependency.released.set()
        dependency.recover()  # so that even a worker deaf to stop() ends


def _counts_errors(worker_class: WorkerClass, backoff_s: float, stops: list[str]) -> str:
    dependency, jobs = Dependency(down=True), queue.Queue()
    worker = worker_class(jobs, dependency, backoff_s=backoff_s)
    return _checked(worker, dependency, lambda: _errors_counted(worker, dependency, jobs), stops)


# Failed calls another client of the same dependency makes before the worker's first job: `errors` counts
# the worker's own failed calls, not the dependency's (`dependency.failures` counts these too).
_OTHERS_FAILURES = 3


def _errors_counted(worker: object, dependency: Dependency, jobs: queue.Queue) -> str:
    for _call in range(_OTHERS_FAILURES):  # the worker has no job yet: it makes no call meanwhile
        with contextlib.suppress(DependencyError):
            dependency.call(-1)
    others = dependency.failures

    def own() -> int:
        return dependency.failures - others

    for job in range(5):
        jobs.put(job)
    if not wait_until(lambda: own() >= 5):
        return _(
            "the worker called the failing dependency {failures} times, then stopped trying",
            failures=own(),
        )
    if not wait_until(lambda: getattr(worker, "errors", 0) >= own() - 1, 1.0):
        return _(
            "worker.errors is {errors!r} after {failures} failed calls",
            errors=getattr(worker, "errors", None),
            failures=own(),
        )
    dependency.recover()  # each failed call still counts once the calls succeed again
    wait_until(lambda: len(getattr(worker, "results", [])) >= 5, 2.0)  # back-offs of 5 ms: room for 8x
    if not wait_until(lambda: getattr(worker, "errors", None) == own(), 1.0):
        errors = getattr(worker, "errors", None)
        if errors == dependency.failures:
            return _(
                "worker.errors is {errors!r}, the dependency's count of failed calls: {others} of them were "
                "another client's, before the worker had a job, and {failures} the worker's own (count the "
                "worker's own failed calls)",
                errors=errors,
                others=others,
                failures=own(),
            )
        return _(
            "worker.errors is {errors!r} after the dependency recovered, but {failures} calls had failed",
            errors=errors,
            failures=own(),
        )
    return ""


class _TimedDependency(Dependency):
    """A dependency that notes when each call came and when each failed call raised (`time.monotonic()`)."""

    def __init__(self, *, down: bool = False) -> None:
        super().__init__(down=down)
        self.entered: list[float] = []
        self.failed: list[float] = []

    def call(self, job: int) -> int:
        self.entered.append(time.monotonic())
        try:
            return super().call(job)
        except DependencyError:
            self.failed.append(time.monotonic())
            raise


def _backs_off(worker_class: WorkerClass, backoff_s: float, stops: list[str], *, failures: int, limit_s: float) -> str:
    """Every failed call is followed by a back-off of backoff_s before the next call, never less: the gap
    from each failure to the next call is timed (up to `failures` failed calls, or those `limit_s` gives: a
    back-off that grows makes fewer). Load only makes a gap longer; a longer back-off is fine."""
    dependency, jobs = _TimedDependency(down=True), queue.Queue()

    def judge() -> str:
        jobs.put(1)
        wait_until(lambda: dependency.failures >= failures, limit_s)
        entered, failed = sorted(dependency.entered), list(dependency.failed)
        # Each failure and the first call after it; one with no call after it yet is not timed.
        gaps = [entered[bisect.bisect_right(entered, f)] - f for f in failed if entered[-1] > f]
        # 0.9: a wait on a timeout may end a hair before it (the clocks' rounding), never a tenth early.
        if early := [gap for gap in gaps if gap < 0.9 * backoff_s]:
            return _(
                "with backoff_s={backoff:g}, a failed call was retried after {gap:.4f} s ({early} of {gaps} "
                "retries came sooner than backoff_s): a failed call is retried after a back-off of backoff_s, "
                "never sooner",
                backoff=backoff_s,
                gap=min(early),
                early=len(early),
                gaps=len(gaps),
            )
        return ""

    return _checked(worker_class(jobs, dependency, backoff_s=backoff_s), dependency, judge, stops)


def _idle_without_spinning(worker_class: WorkerClass, window_s: float, stops: list[str]) -> str:
    """With nothing to do, the worker waits without using a CPU; stopped idle, it ends before stop() returns."""
    dependency = Dependency()
    mine = {threading.main_thread().native_id, threading.get_native_id()}

    def judge() -> str:
        time.sleep(0.02)
        began, before = time.monotonic(), cpu_seconds(exclude=mine)
        time.sleep(window_s)
        # Divided by the time that really passed: a spinning thread can keep this one waiting for the GIL.
        # Time on a CPU, not time waiting for one: a worker that wakes on a timeout waits longer for its
        # turn on a loaded machine, but does not spin (10%: a spinner with ten runnable threads per core).
        share = (cpu_seconds(exclude=mine) - before) / (time.monotonic() - began)
        if share > 0.1:
            return _("with nothing to do, the worker kept a CPU busy {share:.0%} of the time: it spins", share=share)
        return ""

    return _checked(worker_class(queue.Queue(), dependency, backoff_s=0.02), dependency, judge, stops)


class _RecordingDependency(Dependency):
    """A dependency that notes every job it was asked to do and every value its successful calls returned,
    so results can be traced to them."""

    def __init__(self, *, down: bool = False) -> None:
        super().__init__(down=down)
        self.tried: set[int] = set()
        self.returned: list[int] = []
        self.failed_at: list[float] = []  # when each failed call came (monotonic)

    def call(self, job: int) -> int:
        self.tried.add(job)
        try:
            value = super().call(job)
        except DependencyError:
            self.failed_at.append(time.monotonic())
            raise
        self.returned.append(value)
        return value


# How long a long outage (`_work_gets_done`) lasts at most: a worker whose back-off grows exponentially
# makes only a few tries in it, one that gives up after a number of tries far more than that.
_LONG_OUTAGE_S = 1.2


def _work_gets_done(
    worker_class: WorkerClass,
    stops: list[str],
    jobs_count: int,
    values: tuple[int, ...] = (),
    down_for: int = 3,
    long_down_for: int = 0,
) -> str:
    """The jobs are queued while the dependency is down for `down_for` failed calls; it recovers, and every
    one must be done, in order. With `long_down_for`, the second half of them come in a second outage, of
    that many failed calls (or `_LONG_OUTAGE_S`, whichever ends first): a worker that gives up on a job
    after fewer tries than that drops it."""
    dependency, jobs = _RecordingDependency(down=True), queue.Queue()
    worker = worker_class(jobs, dependency, backoff_s=0.005)
    values = values or tuple(range(jobs_count))
    first, second = (values[: len(values) // 2], values[len(values) // 2 :]) if long_down_for else (values, ())

    def results() -> list:
        return getattr(worker, "results", [])

    def judge() -> str:
        for job in first:
            jobs.put(job)
        wait_until(lambda: dependency.failures >= down_for)
        dependency.recover()  # jobs that failed while it was down must still be done
        queued = first
        if wait_until(lambda: len(results()) >= len(first)) and second:  # all done: the worker is idle
            dependency.go_down()
            failed, queued = dependency.failures, values
            for job in second:
                jobs.put(job)
            wait_until(lambda: dependency.failures >= failed + long_down_for, _LONG_OUTAGE_S)
            dependency.recover()
            # the next try comes after a back-off that may have grown: up to ten times the last one
            times = dependency.failed_at
            last = times[-1] - times[-2] if len(times) > 1 else 0.0
            wait_until(lambda: len(results()) >= len(values), 10 * last + 1.5)
        expected = [job * 2 for job in queued]
        got = list(results())
        returned = Counter(dependency.returned)  # read after results: every call behind them has been noted
        if got != expected:
            return _(
                "after the dependency recovered, worker.results was {results!r}, expected {expected!r}",
                results=got[:8],
                expected=expected[:8],
            )
        made_up = [value for value, n in Counter(got).items() if n > returned[value]]
        if made_up:
            return _(
                "worker.results holds {made_up!r}, which no successful dependency.call returned: "
                "a failed call must be retried, not given a result",
                made_up=made_up[:8],
            )
        return ""

    return _checked(worker, dependency, judge, stops)


def probe(
    worker_class: WorkerClass,
    *,
    backoff_s: float = 2.0,
    jobs: int = 6,
    idle_window_s: float = 0.3,
    values: list[int] | None = None,
    down_for: int = 3,
    long_down_for: int = 40,
    waiting: int = 2,
    short_backoff_s: float = 0.02,
) -> tuple[Awaitable[object], Callable[[], dict]]:
    """The checks a grader runs against a worker class, and a summary of them (`traffic` draws the options).
    Back-offs are timed at a short `short_backoff_s` (the default's) and a long one, so that an answer
    cannot keep to backoff_s only at the length the tests use. Every worker a check makes is stopped at its
    end and asked whether its thread still ran as stop() returned (idle or busy, the first of the process or
    the last): stops promptly reports it."""
    stops: list[str] = []  # what stop() left running, in the checks before stops promptly
    return Checks().in_thread(  # the check that may leave a worker running forever comes last
        idle_without_spinning=lambda: _idle_without_spinning(worker_class, idle_window_s, stops),
        counts_errors=lambda: (
            _counts_errors(worker_class, 0.005, stops)
            or _backs_off(worker_class, short_backoff_s, stops, failures=8, limit_s=0.4)
            or _backs_off(worker_class, 0.2, stops, failures=3, limit_s=1.0)
        ),
        work_gets_done=lambda: _work_gets_done(worker_class, stops, jobs, tuple(values or ()), down_for, long_down_for),
        stops_promptly=lambda: (  # the first may leave a worker running forever: when it fails, the rest do not run
            _stop_while_failing(worker_class, backoff_s, waiting)
            or _stop_during_a_call(worker_class, waiting=waiting)
            or _stop_during_a_call(worker_class, failing=True, waiting=waiting)
            or _no_sleep_in_backoff(worker_class, short_backoff_s)
            or _stops_at_once(worker_class)
            or (stops[0] if stops else "")
        ),
    )


def traffic(seed: int, *, backoff_s: float = 3.0, jobs: int = 10, idle_window_s: float = 0.4) -> dict:
    """Hidden checks drawn by Hypothesis (leaklab.scenarios._traffic): jobs of any values in any order
    (their results must come back in that order), a dependency down for 1-8 failed calls before it
    recovers, and a stop() that comes in the back-off of a worker stuck on its first job, with 1-5 jobs
    queued behind it, with a back-off of 2-6 s (a retry path that sleeps through the stop takes that long);
    and a second outage of 60-90 failed calls, in which a worker that gives up after a number of tries
    (ten, fifty) drops a job."""
    from hypothesis import strategies as st

    from ._traffic import draw

    options = draw(
        st.fixed_dictionaries(
            {
                "values": st.lists(
                    st.integers(-1000, 1000), min_size=max(3, jobs // 2), max_size=jobs * 2, unique=True
                ),
                "down_for": st.integers(1, 8),
                "waiting": st.integers(1, 5),
                "backoff_s": st.sampled_from((2.0, 2.5, 3.0, 4.0, 5.0, 6.0)),
                "short_backoff_s": st.sampled_from((0.02, 0.025, 0.03, 0.04, 0.05)),
                "long_down_for": st.integers(60, 90),  # last: the draws before it stay as they were
            }
        ),
        seed,
        lambda drawn: drawn["values"] != sorted(drawn["values"]),
    )
    return {**options, "idle_window_s": idle_window_s}


# The scenario contract (leaklab.scenarios): the names an answer cell may use besides `asyncio`.
ANSWER = "Worker"  # the name the task has the answer cell bind, whatever object it binds there
ANSWER_NAMES = ("BUFFER_BYTES", "Dependency", "DependencyError", "queue", "threading", "time")
