"""What the scenarios' graders share: polling with a bound, counting threads and CPU, naming how a call
ended, and recording graded properties as `[passed, out of]` with what went wrong."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from .._census import alive_threads
from .._errors import described

# Bound when the scenario is imported, before an answer runs: what the checks ask with.
_enumerate, _listdir = threading.enumerate, os.listdir
# threading's waits (Event, Queue, Semaphore, Barrier, Timer) all wait in Condition.wait, and every way to
# wake one (Event.set, Queue.put, notify_all) goes through Condition.notify: what a profile hook looks for.
CONDITION_WAIT, CONDITION_NOTIFY = threading.Condition.wait.__code__, threading.Condition.notify.__code__


def exception_name(exc: BaseException) -> str:
    """How a call that raised `exc` ended, named by the exception the task names: an answer's own subclass of
    TimeoutError (a `DeadlineExceeded`, after Go's) is a TimeoutError to every `except TimeoutError`."""
    return "TimeoutError" if isinstance(exc, TimeoutError) else type(exc).__name__


def wait_until(condition: Callable[[], bool], limit_s: float = 1.5) -> bool:
    """Poll a condition every millisecond; False if it is still untrue after `limit_s` (a wide margin:
    what is awaited takes milliseconds)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


# A stop() called early in a wait that it should cut short (lesson 02's back-off, lesson 06's interval), at
# each of `PROMPT_AT_S` after the wait began: a right stop() wakes the wait and returns in milliseconds (tens
# on a loaded machine); one that waits out a sleep or a slice of something it does not wake, or that sleeps
# before it signals, takes most of what is left, more than `PROMPT_BOUND_S` each time. A clock, so judged
# by most of the stops (`slow_at_most`), with a margin of 0.2 s on each side in a wait of 0.6 s or more:
# deaf waits of about 0.4 s and more are caught; shorter slices are the wake counts' to find.
PROMPT_AT_S, PROMPT_BOUND_S = (0.0, 0.05, 0.1, 0.15), 0.2


def slow_at_most(took: list[float]) -> str:
    """How long these stop() calls took ("0.50, 0.45, ..."), if most of them (three of four) took longer
    than `PROMPT_BOUND_S`; else ""."""
    slow = 4 * sum(t > PROMPT_BOUND_S for t in took) >= 3 * len(took)
    return ", ".join(f"{t:.2f}" for t in took) if slow else ""


def alive(threads: Iterable[threading.Thread]) -> list[threading.Thread]:
    """Those of `threads` whose code has not ended, as `threading.Thread` itself says (a subclass's own
    `is_alive` cannot answer for it) or the operating system does (`_census.thread_alive`: a flag such as
    `_is_stopped` hides no thread that runs). A thread that was joined is not alive from the moment
    `join()` returns: asking right after a `stop()` depends on no timing."""
    return alive_threads(threads)


class StopWatch:
    """One stop() a check calls and watches: the thread that calls it, once started, and `over`, set once
    the threads it should have waited for have been counted the moment it returned (or the check is over)."""

    def __init__(self) -> None:
        self.caller: threading.Thread | None = None
        self.over = threading.Event()


# How long a thread's end is held while the stop() watched neither joins it nor returns (`hold_end`): far
# more than a stop() that waits for less than the thread's end takes to return, even on a loaded machine;
# what a stop() that polls `is_alive()` instead of joining waits, once, so it stays well inside a run's budget.
EXIT_HELD_S = 1.0
FOREVER = object()  # what a wait with no timeout waits for: something only another thread can do
# Per thread: the exit guard `hold_end` left there. The interpreter drops a thread's `threading.local`
# values as the thread ends (CPython clears the thread's state after its code has returned), before
# `join()` or `is_alive()` can see it has ended and while it still runs a frame.
_EXITS = threading.local()


class _ExitGuard:
    def __init__(self, stop: StopWatch, thread: threading.Thread) -> None:
        self.stop, self.thread, self.ident = stop, thread, threading.get_ident()

    def __del__(self) -> None:
        # Only as its own thread ends: no Python frame below this one (not when replaced by the next guard).
        if threading.get_ident() != self.ident or sys._getframe().f_back is not None:
            return
        deadline = time.monotonic() + EXIT_HELD_S
        while not self.stop.over.is_set() and time.monotonic() < deadline:
            caller = self.stop.caller
            if caller is not None and blocked_on(caller)[0] is self.thread:
                return  # stop() waits for this thread's end: let it end
            self.stop.over.wait(0.001)


def hold_end(stop: StopWatch) -> None:
    """Hold the calling thread at its very end, once its code has returned, until `stop` has returned and
    been judged (`over`), or is seen joining this thread: a stop() that waits for anything less than the
    thread's end (a counter or an event the thread sets on its way out, a queue's last `task_done`) returns
    while the thread provably still runs, however briefly it would have run on. A stop() that waits by
    asking `is_alive()` is let through after `EXIT_HELD_S`."""
    _EXITS.guard = _ExitGuard(stop, threading.current_thread())


def blocked_on(thread: threading.Thread) -> tuple[object, bool]:
    """What `thread` waits for in threading's own code, and whether with a timeout: the thread it joins,
    `FOREVER` for another wait, or None (not waiting there)."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None or frame.f_code.co_filename != threading.__file__:
        return None, False
    local = frame.f_locals
    if frame.f_code.co_name == "_wait_for_tstate_lock" and local.get("block", True):
        return local.get("self"), local.get("timeout", -1) != -1
    if frame.f_code.co_name == "join":
        return local.get("self"), local.get("timeout") is not None
    if frame.f_code.co_name == "wait":
        return (FOREVER, False) if local.get("timeout") is None else (None, True)
    return None, False


def python_threads() -> set[threading.Thread]:
    """The threads `threading` knows of, alive, from its own registry."""
    return set(_enumerate())


def thread_ids() -> set[str]:
    """The operating system's ids of this process's threads (Linux: `/proc/self/task`)."""
    return set(_listdir("/proc/self/task"))


def busy_seconds(*, only: set[int] | None = None, exclude: set[int] = frozenset()) -> float:  # type: ignore[assignment]
    """Seconds this process's threads (`only` these, or all but `exclude`, by native id) have spent
    running or ready to run (Linux: `/proc/self/task/*/schedstat`, time on a CPU and time waiting for one).

    For a thread that spins the sum grows at the rate of the clock however loaded the machine; so does
    it, on a loaded machine, for a thread that only wakes often (each wake-up waits its turn for a CPU):
    what lesson 02 shows of the article's worker, not what a check may judge by (`cpu_seconds`).
    """
    return sum(on_cpu + waiting for on_cpu, waiting in _schedstats(only, exclude)) / 1e9


def cpu_seconds(*, only: set[int] | None = None, exclude: set[int] = frozenset()) -> float:  # type: ignore[assignment]
    """Seconds this process's threads (`only` these, or all but `exclude`) have spent on a CPU.

    A thread that spins takes whatever share of a CPU the machine leaves it: most of one, or a fifth with
    ten runnable threads per core; a thread that waits (blocked, or woken a hundred times a second by a
    timeout) takes a few thousandths, however long each wake-up had to wait for its turn.
    """
    return sum(on_cpu for on_cpu, _waiting in _schedstats(only, exclude)) / 1e9


def _schedstats(only: set[int] | None, exclude: set[int]) -> list[tuple[int, int]]:
    """(nanoseconds on a CPU, nanoseconds waiting for one) of each thread asked for."""
    found = []
    for tid in os.listdir("/proc/self/task"):
        if int(tid) in exclude or (only is not None and int(tid) not in only):
            continue
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as stats:
                on_cpu, waiting, _slices = stats.read().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        found.append((int(on_cpu), int(waiting)))
    return found


@dataclass
class Checks:
    """The graded properties, each as [passed, out of], and what went wrong."""

    counts: dict[str, list[int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def record(self, name: str, problem: str) -> None:
        passed, total = self.counts.get(name, [0, 0])
        self.counts[name] = [passed + (not problem), total + 1]
        if problem:
            self.problems.append(f"{name.replace('_', ' ')}: {problem}")

    def run(self, **checks: Callable[[], str]) -> None:
        """Run each check in turn; one that raises fails its property with the exception's name."""
        for name, check in checks.items():
            try:
                self.record(name, check())
            except Exception as exc:
                self.record(name, described(exc))

    def summary(self) -> dict:
        """The counts, and the problems found."""
        return {**self.counts, "problems": self.problems}

    def in_thread(self, **checks: Callable[[], str]) -> tuple[Awaitable[None], Callable[[], dict]]:
        """A scenario's `probe`: the checks run in a thread of the grader's loop, and their summary."""
        import asyncio

        return asyncio.to_thread(self.run, **checks), self.summary
