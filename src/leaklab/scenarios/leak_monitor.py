"""Scenario 06, the leak monitor: a ticker that samples the task and thread counts and warns.

The article 「当Goroutine成为内存黑洞」 shows, in its section 「Goroutine数量监控」, a goroutine that reads
`runtime.NumGoroutine()` every 30 s into a gauge and logs a warning when the count is above 1000. Its
`for range ticker.C` loop never ends, so its deferred `ticker.Stop()` never runs and the monitor is a
goroutine with no exit; it logs on every tick for as long as the count stays high, never says when the
count is back, and has no notion of a sustained rise. Here: a service that leaks tasks and threads, a
healthy one with bursts, the article's monitor statement for statement, and the grader of the learner's
monitor, which drives `tick()` itself so that alerts are counted per sample, not per clock.

Time is compressed: a millisecond here stands for a second in the article.
"""

from __future__ import annotations

import asyncio
import os
import resource
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import FrameType
from typing import NamedTuple, TypeVar

from .._census import Census
from .._i18n import _
from ._checks import (
    CONDITION_NOTIFY,
    CONDITION_WAIT,
    EXIT_HELD_S,
    PROMPT_AT_S,
    Checks,
    StopWatch,
    alive,
    busy_seconds,
    described,
    hold_end,
    slow_at_most,
    thread_ids,
    wait_until,
)

# Python's own export list (`import *`); the grader gives an answer cell ANSWER_NAMES, at the end.
__all__ = ["Sample", "threading", "time"]

BUFFER_BYTES = 64 * 1024  # DO NOT CHANGE: the memory each leaked task or thread holds
TICK_S = 0.030  # DO NOT CHANGE: the article's 30 s ticker, compressed (a millisecond for a second)
THRESHOLD = 40  # DO NOT CHANGE: the article's 1000 goroutines, scaled to this lesson's small services
SUSTAIN = 3  # DO NOT CHANGE: ticks above the threshold in a row before the notebook's monitors alert
INTERVAL_S = 0.005  # DO NOT CHANGE: the interval the grader gives the monitors whose tick() it drives

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class Sample(NamedTuple):
    """One look at a service: its live tasks and threads, and the process's resident memory."""

    tasks: int
    threads: int
    rss_bytes: int

    @property
    def total(self) -> int:
        """Tasks and threads together: what Go's `runtime.NumGoroutine()` would count."""
        return self.tasks + self.threads


def rss_bytes() -> int:
    """The process's resident memory, from the operating system (Linux: `/proc/self/statm`)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES


def process_sampler() -> Callable[[], Sample]:
    """A `sample` for the notebook: tasks and threads started since it was made, the kernel's own and the
    calling monitor's thread left out, and the process's resident memory."""
    census = Census.take()

    def sample() -> Sample:
        me = threading.current_thread()
        threads = [t for t in census.new_threads() if t is not me]
        return Sample(len(census.new_tasks()), len(threads), rss_bytes())

    return sample


# --- the services ----------------------------------------------------------------------------------


class LeakyService:
    """An asyncio service whose every request leaves a notifier task behind that waits for ever, and
    whose every `thread_every`-th request leaves a thread stuck in a call that never returns; each
    holds BUFFER_BYTES. `shutdown()` (a restart, say) ends them all."""

    def __init__(self, *, thread_every: int = 4) -> None:
        self.thread_every = thread_every
        self.requests = 0
        self._tasks: list[asyncio.Task] = []
        self._threads: list[threading.Thread] = []
        self._gone: asyncio.Future[None] | None = None
        self._released = threading.Event()

    def request(self) -> None:
        """Answer one request at once, and leave its notifier (and sometimes a thread) behind."""
        self.requests += 1
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()
        self._tasks.append(asyncio.get_running_loop().create_task(self._notify(self._gone)))
        if self.requests % self.thread_every == 0:
            thread = threading.Thread(target=self._hung_call, name="hung-call", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def serve(self, *, requests: int, every_s: float = 0.002) -> None:
        """Traffic: `requests` requests, one every `every_s`."""
        for _request in range(requests):
            self.request()
            await asyncio.sleep(every_s)

    async def _notify(self, gone: asyncio.Future[None]) -> None:
        buffer = bytearray(BUFFER_BYTES)  # held for as long as the notifier waits
        await gone  # the reply channel nobody reads: in the story, nothing ever ends this wait
        buffer[0] = 1

    def _hung_call(self) -> None:
        buffer = bytearray(BUFFER_BYTES)
        self._released.wait()  # a call to a peer that never answers, with no timeout
        buffer[0] = 1

    def sample(self) -> Sample:
        """This service's live tasks and threads (safe to call from any thread)."""
        tasks = sum(not task.done() for task in list(self._tasks))
        threads = sum(thread.is_alive() for thread in list(self._threads))
        return Sample(tasks, threads, rss_bytes())

    def total(self) -> int:
        """Live tasks + threads, what the monitors compare with the threshold (for a `Recorder`'s counts)."""
        return self.sample().total

    async def shutdown(self) -> None:
        """End every leftover (what a restart does): the count falls back to zero."""
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)
        self._released.set()
        await asyncio.gather(*self._tasks)
        for thread in self._threads:
            thread.join()
        self._tasks.clear()
        self._threads.clear()


class HealthyService:
    """An asyncio service that handles bursts: `size` short-lived tasks at once, each gone when its work
    is done. Its count jumps above the threshold during a burst and falls back after."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task] = []
        self._open: asyncio.Event | None = None

    def start_burst(self, size: int) -> None:
        """Start `size` tasks that each hold BUFFER_BYTES and end when `finish_burst()` lets them."""
        self._open = asyncio.Event()
        self._tasks = [asyncio.get_running_loop().create_task(self._work(self._open)) for _task in range(size)]

    async def finish_burst(self) -> None:
        """Let the burst's tasks finish, and wait until they have."""
        if self._open is not None:
            self._open.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []

    async def shutdown(self) -> None:
        """End a burst still running (the same interface as `LeakyService.shutdown`)."""
        await self.finish_burst()

    async def serve(
        self,
        *,
        bursts: int,
        size: int,
        work_s: float = 0.035,
        pause_s: float = 0.04,
        at_threshold: int | None = None,
        spell_s: float = 0.15,
    ) -> None:
        """Traffic: with `at_threshold`, first a busy spell of exactly that many requests for `spell_s`;
        then `bursts` bursts of `size` requests, each handled in about `work_s`."""
        if at_threshold is not None:
            self.start_burst(at_threshold)
            await asyncio.sleep(spell_s)
            await self.finish_burst()
            await asyncio.sleep(pause_s)
        for _burst in range(bursts):
            self.start_burst(size)
            await asyncio.sleep(work_s)
            await self.finish_burst()
            await asyncio.sleep(pause_s)

    async def _work(self, done: asyncio.Event) -> None:
        buffer = bytearray(BUFFER_BYTES)
        await done.wait()
        buffer[0] = 1

    def sample(self) -> Sample:
        """This service's live tasks (safe to call from any thread)."""
        return Sample(sum(not task.done() for task in list(self._tasks)), 0, rss_bytes())

    def total(self) -> int:
        """Live tasks, what the monitors compare with the threshold (for a `Recorder`'s counts)."""
        return self.sample().total


# --- the article's monitor, statement for statement -------------------------------------------------


class ProcessExit(BaseException):
    """Raised in an article monitor's thread by `ArticleMonitor.exit_process()`: the process exiting,
    the only end that monitor has (a BaseException, so that nothing in the loop catches it)."""


class _Process:
    """What stands for the process around an article monitor: its exit, and the tickers made in it."""

    def __init__(self) -> None:
        self.exit = threading.Event()
        self.tickers: list[Ticker] = []


# The thread that runs each article monitor, with its stand-in process (see ArticleMonitor).
_PROCESSES: weakref.WeakKeyDictionary[threading.Thread, _Process] = weakref.WeakKeyDictionary()


class Ticker:
    """Go's `time.Ticker` for a thread: `ticks()` is `ticker.C` read in a `for range` loop, a tick every
    interval for ever; `stop()` ends the ticks and, like Go's `Stop`, does not end a loop that reads them."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.stopped = False
        self._process = _PROCESSES.get(threading.current_thread()) or _Process()
        self._process.tickers.append(self)

    def ticks(self) -> Iterator[float]:
        due = time.monotonic()
        while True:
            due = max(due + self.interval_s, time.monotonic())  # like Go, drop the ticks a slow reader missed
            wait = None if self.stopped else due - time.monotonic()  # a stopped ticker never ticks again
            if self._process.exit.wait(wait):
                raise ProcessExit  # not Go's ticker: the process ends (ArticleMonitor.exit_process)
            yield time.monotonic()

    def stop(self) -> None:
        self.stopped = True


class Gauge:
    """A metrics gauge: the last value set, which a dashboard would draw."""

    def __init__(self) -> None:
        self.value: int | None = None
        self.updates = 0

    def set(self, value: int) -> None:
        self.value, self.updates = value, self.updates + 1


def monitor_goroutines(sample: Callable[[], Sample], gauge: Gauge, warn: Callable[[str], object]) -> None:
    """The article's monitorGoroutines, statement for statement; its 30 s and its 1000 are TICK_S and
    THRESHOLD here."""
    ticker = Ticker(TICK_S)  # ticker := time.NewTicker(30 * time.Second)
    for _tick in ticker.ticks():  # for range ticker.C: nothing in this loop ever leaves it
        count = sample().total  # runtime.NumGoroutine(): here, the service's tasks + threads
        gauge.set(count)  # metrics.Gauge("runtime.goroutines", count)
        if count > THRESHOLD:  # if count > 1000
            warn(f"WARNING: unusual goroutine count: {count}")  # log.Printf: again on every tick above it
    ticker.stop()  # defer ticker.Stop(): runs when the function returns, and the loop above never lets it


class ArticleMonitor:
    """Runs `monitor_goroutines` in a thread of its own, as `go monitorGoroutines()` would. It has no
    stop: the Go code has none. `exit_process()` stands for the one thing that ends that goroutine, the
    process exiting; the lesson needs it to tidy the kernel, the article's code knows nothing of it."""

    def __init__(self, *, sample: Callable[[], Sample], gauge: Gauge, warn: Callable[[str], object]) -> None:
        self.thread = threading.Thread(
            target=self._run, args=(sample, gauge, warn), name="article-monitor", daemon=True
        )
        self._process = _PROCESSES[self.thread] = _Process()

    def start(self) -> None:
        self.thread.start()

    def running(self) -> bool:
        """Whether the monitor's thread is still running."""
        return self.thread.is_alive()

    def ticker_stopped(self) -> bool:
        """Whether the monitor's `ticker.stop()` (Go's deferred `ticker.Stop()`) has run."""
        return any(ticker.stopped for ticker in self._process.tickers)

    def exit_process(self) -> None:
        """End the monitor's thread the way the process's exit ends a goroutine: from outside."""
        self._process.exit.set()
        self.thread.join()

    @staticmethod
    def _run(sample: Callable[[], Sample], gauge: Gauge, warn: Callable[[str], object]) -> None:
        try:
            monitor_goroutines(sample, gauge, warn)
        except ProcessExit:
            pass


class AlertLog:
    """A `warn` for the notebook: keeps each message with its time, in ms on a recorder's time axis (or
    since the log was made)."""

    def __init__(self, recorder: object | None = None) -> None:
        self._started_ms = getattr(recorder, "started_ms", None) or time.time() * 1000
        self.alerts: list[tuple[float, str]] = []

    def __call__(self, message: str) -> None:
        self.alerts.append((time.time() * 1000 - self._started_ms, message))

    def __len__(self) -> int:
        return len(self.alerts)

    def __str__(self) -> str:
        lines = [_("{at:7.1f} ms  {message}", at=at, message=message) for at, message in self.alerts]
        return "\n".join(lines) or _("(no message)")

    def since(self, at_ms: float) -> list[tuple[float, str]]:
        """The messages logged after `at_ms` on this log's time axis."""
        return [(at, message) for at, message in self.alerts if at > at_ms]

    def now_ms(self) -> float:
        """Now, on this log's time axis."""
        return time.time() * 1000 - self._started_ms

    def markers(self, prefix: str = "") -> list[tuple[float, str]]:
        """Each message as a `plot_runs` marker, labelled by its first word (`ALERT`, `RESOLVED`)."""
        return [(at, prefix + _first_word(message)) for at, message in self.alerts]


def _first_word(message: object) -> str:
    words = str(message).replace(":", " ").replace("\uff1a", " ").split()  # and a full-width colon (a Chinese alert)
    return words[0][:16] if words else _("(empty)")


class Stopped(NamedTuple):
    """What a monitor's `stop()` did: how long it took, and whether a thread the monitor started was still
    running the moment it returned."""

    took_ms: float
    still_running: bool

    def __str__(self) -> str:
        if self.still_running:
            return _(
                "stop() took {took:.1f} ms; the monitor's thread was still running when it returned", took=self.took_ms
            )
        return _("stop() took {took:.1f} ms; the monitor's thread had ended when it returned", took=self.took_ms)


class Lifecycle:
    """`with Lifecycle(monitor):` starts a monitor and stops it, noting what `stop()` did in `stopped`."""

    def __init__(self, monitor: object) -> None:
        self.monitor = monitor
        self.stopped: Stopped | None = None
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> object:
        before = set(threading.enumerate())
        self.monitor.start()  # type: ignore[attr-defined]
        self._threads = [t for t in threading.enumerate() if t not in before]
        return self.monitor

    def __exit__(self, *exc_info: object) -> None:
        began = time.perf_counter()
        self.monitor.stop()  # type: ignore[attr-defined]
        took_ms = (time.perf_counter() - began) * 1000
        self.stopped = Stopped(took_ms, alive(self._threads))


async def leaky_rounds(rounds: int = 10) -> AsyncIterator[str]:
    """The leak for `leaklab run`: 20 requests a round to the leaky service (a task left behind for each,
    a thread for every fourth)."""
    service = LeakyService()
    try:
        for _round in range(rounds):
            await service.serve(requests=20, every_s=0.001)
            yield _("{requests} requests served so far", requests=service.requests)
    finally:
        await service.shutdown()


# --- grading: what a fresh process runs against the learner's monitor --------------------------------

MonitorClass = Callable[..., object]
_Found = TypeVar("_Found")  # what a check run by _in_thread finds: its problem, or problems
_BOUND_S = 1.0  # the wait for what takes milliseconds (a tick, a stop): a wide margin on a loaded machine
# How long the monitor's sample is held while stop() waits: a stop() that joins with a timeout shorter
# than this (lesson 02's bounded join, `join(timeout=1.0)` included) has returned by then.
_HOLD_S = 1.5
# Quiet samples before the first leak: a series kept in a window (`deque(maxlen=...)`) shorter than this
# has dropped some by the time it is read. Milliseconds here, a thousand ticks of the tick() driven run.
_QUIET_LEAD = 1000


def _stop_in_thread(
    monitor: object, owners: list[threading.Thread], watch: StopWatch | None = None
) -> tuple[threading.Thread, dict]:
    """Call `monitor.stop()` in a thread of its own; note whether the monitor's threads were still
    alive the moment stop() returned (then `watch` is over: a thread whose end it holds may end)."""
    seen: dict = {}

    def call() -> None:
        try:
            monitor.stop()  # type: ignore[attr-defined]
        except Exception as exc:
            seen["error"] = _("stop() raised {error}: {exc}", error=type(exc).__name__, exc=exc)
        try:
            seen["alive"] = alive(owners)  # asked of threading.Thread itself: a subclass cannot answer for it
        finally:
            if watch is not None:
                watch.over.set()

    caller = threading.Thread(target=call, name="grader-stop", daemon=True)
    if watch is not None:
        watch.caller = caller
    caller.start()
    return caller, seen


def _stopped_in_a_wait(monitor: object, started: list[threading.Thread], long_s: float) -> tuple[threading.Thread, str]:
    """Call stop() (in a thread of its own: `_stop_in_thread`) while the monitor waits out an interval of
    `long_s`; the calling thread, and what is wrong with how stop() returned (nothing: "")."""
    caller, seen = _stop_in_thread(monitor, started)
    caller.join(_BOUND_S)  # a stop that is heard takes milliseconds; one that is not takes `long_s`
    if caller.is_alive():
        return caller, _(
            "with interval_s={interval:g}, stop() had not returned after {bound:g} s: the ticker sleeps through "
            "the stop signal (wait on an Event with a timeout instead of time.sleep)",
            interval=long_s,
            bound=_BOUND_S,
        )
    if "error" in seen:
        return caller, seen["error"]
    if seen["alive"]:
        return caller, _(
            "with interval_s={interval:g}, stop() returned while the monitor's thread was still running",
            interval=long_s,
        )
    return caller, ""


async def _in_thread(check: Callable[[], _Found], limit_s: float = 3 * _BOUND_S + 1) -> _Found | str:
    """Run a check that blocks in a thread of its own, with the loop free meanwhile; what it found, or the
    problem that kept it from finding anything."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[_Found | str] = loop.create_future()

    def settle(problem: _Found | str) -> None:
        if not outcome.done():
            outcome.set_result(problem)

    def run() -> None:
        problem: _Found | str
        try:
            problem = check()
        except Exception as exc:
            problem = described(exc)
        try:
            loop.call_soon_threadsafe(settle, problem)
        except RuntimeError:  # the check outlived the grading run's loop
            pass

    threading.Thread(target=run, name="grader-check", daemon=True).start()
    try:
        return await asyncio.wait_for(outcome, limit_s)
    except TimeoutError:
        return _("the check did not end within {limit:.0f} s", limit=limit_s)


async def _attempt(check: Awaitable[str]) -> str:
    try:
        return await check
    except Exception as exc:
        return described(exc)


def _record(returned: list[Sample], read: Callable[[], Sample]) -> Callable[[], Sample]:
    def sample() -> Sample:
        now = read()
        returned.append(now)
        return now

    return sample


async def _healthy_bursts(monitor_class: MonitorClass, *, threshold: int, sustain: int, bursts: int) -> str:
    service, messages, returned = HealthyService(), [], []
    monitor = monitor_class(
        sample=_record(returned, service.sample),
        threshold=threshold,
        sustain=sustain,
        interval_s=INTERVAL_S,
        warn=messages.append,
    )
    try:
        monitor.tick()  # type: ignore[attr-defined]
        for burst in range(bursts):
            # Each burst stays above the threshold for one sample less than `sustain`, then one quiet
            # sample: the count is over the threshold often, but never for `sustain` samples in a row.
            # Every other quiet sample is exactly at the threshold: it too ends a run above it.
            service.start_burst(threshold + 5 + burst)
            for _sample in range(sustain - 1):
                monitor.tick()  # type: ignore[attr-defined]
            await service.finish_burst()
            if burst % 2 == 0:
                service.start_burst(threshold)
            monitor.tick()  # type: ignore[attr-defined]
            await service.finish_burst()
        bursts_said = len(messages)
        # Then a busy spell exactly at the threshold, never above it, for longer than `sustain` samples.
        service.start_burst(threshold)
        for _sample in range(sustain + 2):
            monitor.tick()  # type: ignore[attr-defined]
        await service.finish_burst()
        monitor.tick()  # type: ignore[attr-defined]
    finally:
        await service.finish_burst()
    if messages and not bursts_said:
        return _(
            "a warning for a count that stayed exactly at the threshold ({threshold}) for {samples} samples, "
            "never above it: {message!r}; alert only above the threshold",
            threshold=threshold,
            samples=sustain + 2,
            message=messages[0],
        )
    if messages:
        over = sum(s.total > threshold for s in returned)
        return _(
            "{warnings} warnings for a healthy service whose bursts stayed above the threshold for "
            "{samples} samples at a time, with a sample at or under it between them (every other one "
            "exactly at {threshold}): {over} of {total} samples above it, never {sustain} in a row; "
            "first {first!r}",
            warnings=len(messages),
            samples=sustain - 1,
            threshold=threshold,
            over=over,
            total=len(returned),
            sustain=sustain,
            first=messages[0],
        )
    return ""


async def _leak_episodes(
    monitor_class: MonitorClass, *, threshold: int, sustain: int, episodes: int
) -> tuple[str, str, bool]:
    """After _QUIET_LEAD quiet samples, leak until the count has been above the threshold for `sustain` + 3
    samples, restart the service, a few quiet samples; `episodes` times. After the first leak the count
    falls back to exactly the threshold, for one sample: recovery is "at or under". Returns the problems
    for the first alert and series, and for the messages' count and order, and whether the monitor said
    anything at all."""
    services: list[LeakyService] = [LeakyService(thread_every=3)]
    spell = HealthyService()  # the busy spell that holds the count at the threshold
    messages: list[tuple[int, object]] = []
    returned: list[Sample] = []
    wrong_returns: list[object] = []  # what tick() returned when it was not the sample it had just taken
    ticks = 0

    def warn(message: object) -> None:
        messages.append((ticks, message))

    def tick() -> None:
        got = monitor.tick()  # type: ignore[attr-defined]
        if not returned or got != returned[-1]:
            wrong_returns.append(got)

    def read() -> Sample:
        leak, busy = services[-1].sample(), spell.sample()
        return Sample(leak.tasks + busy.tasks, leak.threads, leak.rss_bytes)

    monitor = monitor_class(
        sample=_record(returned, read),
        threshold=threshold,
        sustain=sustain,
        interval_s=INTERVAL_S,
        warn=warn,
    )
    plan: list[tuple[int, int, int]] = []  # per episode: the first tick above, the last above, the recovery tick
    try:
        for _quiet in range(_QUIET_LEAD):  # a monitor runs for long before a leak: its series holds every sample
            ticks += 1
            tick()
        for episode in range(episodes):
            if episode:
                services.append(LeakyService(thread_every=3))
            first_over = None
            while first_over is None or ticks - first_over < sustain + 3:
                services[-1].request()
                services[-1].request()
                await asyncio.sleep(0)  # the notifiers start (and stay)
                ticks += 1
                tick()
                if first_over is None and returned[-1].total > threshold:
                    first_over = ticks
            await services[-1].shutdown()
            plan.append((first_over, ticks, ticks + 1))
            if not episode:
                spell.start_burst(threshold)
            for _quiet in range(3):
                ticks += 1
                tick()
                await spell.finish_burst()
    finally:
        await spell.finish_burst()
        for service in services:
            await service.shutdown()
    first_alert = _judge_first_alert(monitor, messages, returned, plan, sustain)
    if not first_alert and wrong_returns:
        first_alert = _("tick() should return the sample it took; it returned {got!r}", got=wrong_returns[0])
    return first_alert, _judge_messages(messages, returned, plan), bool(messages)


def _judge_first_alert(
    monitor: object, messages: list[tuple[int, object]], returned: list[Sample], plan: list, sustain: int
) -> str:
    first_over, _last_over, _recovery = plan[0]
    early = [(tick, message) for tick, message in messages if tick < first_over]
    if early:
        tick, message = early[0]
        count = returned[tick - 1].total if 0 < tick <= len(returned) else _("none yet")
        return _(
            "warned {message!r} at sample {tick}, while the count ({count}) was not above the threshold",
            message=message,
            tick=tick,
            count=count,
        )
    due = first_over + sustain - 1
    alerts = [message for tick, message in messages if first_over <= tick <= due]
    if not alerts:
        later = [tick for tick, _message in messages if tick > due]
        if later:
            return _(
                "the count went above the threshold at sample {first} and stayed there; an alert was due at "
                "sample {due} (after {sustain} samples above), it came only at sample {late}",
                first=first_over,
                due=due,
                sustain=sustain,
                late=later[0],
            )
        return _(
            "the count went above the threshold at sample {first} and stayed there; an alert was due at "
            "sample {due} (after {sustain} samples above), it came never",
            first=first_over,
            due=due,
            sustain=sustain,
        )
    if bad := [message for _tick, message in messages if not (isinstance(message, str) and message)]:
        return _("warn() should get one message, a string; it got {message!r}", message=bad[0])
    series = list(getattr(monitor, "series", None) or [])
    if series != returned:
        return _(
            "monitor.series should hold every sample in order ({samples} so far); it holds {held}",
            samples=len(returned),
            held=len(series),
        )
    return ""


def _judge_messages(messages: list[tuple[int, object]], returned: list[Sample], plan: list) -> str:
    for number, (first_over, last_over, recovery) in enumerate(plan, 1):
        during = [tick for tick, _message in messages if first_over <= tick <= last_over]
        if len(during) > 1:
            return _(
                "leak {number}: {warnings} warnings in {samples} samples above the threshold: "
                "a log flood; warn once when the alert starts",
                number=number,
                warnings=len(during),
                samples=last_over - first_over + 1,
            )
        if not during:
            return _(
                "leak {number}: no warning while the count stayed above the threshold (is the alert re-armed?)",
                number=number,
            )
        back = [tick for tick, _message in messages if tick == recovery]
        if not back:
            return _(
                "leak {number}: no message when the count fell back to {count}, at or under the threshold "
                "(sample {recovery})",
                number=number,
                count=returned[recovery - 1].total if recovery <= len(returned) else _("none yet"),
                recovery=recovery,
            )
        if len(back) > 1:
            return _("leak {number}: {messages} messages on recovery: one is enough", number=number, messages=len(back))
    expected = {tick for plan_row in plan for tick in range(plan_row[0], plan_row[2] + 1)}
    stray = [(tick, message) for tick, message in messages if tick not in expected]
    if stray:
        return _(
            "message {message!r} at sample {tick}, while all was quiet and already reported",
            message=stray[0][1],
            tick=stray[0][0],
        )
    return ""


def _alerts_live(monitor_class: MonitorClass, *, threshold: int, sustain: int, interval_s: float) -> tuple[str, str]:
    """Started with start(), the monitor's own thread warns by tick()'s rules on a leak and its recovery:
    the count is above the threshold for the first `sustain` + 2 samples, then at it; the messages are
    counted per sample the monitor took, not per clock. Returns the problems for whether it warned at
    all, and for the messages' count and order."""
    above, samples, messages = sustain + 2, [], []

    def sample() -> Sample:
        samples.append(Sample(threshold + 5 if len(samples) < above else threshold, 0, 0))
        return samples[-1]

    def warn(message: object) -> None:
        messages.append((len(samples), message))

    monitor = monitor_class(sample=sample, threshold=threshold, sustain=sustain, interval_s=interval_s, warn=warn)
    monitor.start()  # type: ignore[attr-defined]
    try:
        wait_until(lambda: len(samples) >= above + 3, 3 * _BOUND_S)
        taken = len(samples)  # what the thread did while started: samples taken only by stop() do not count
    finally:
        monitor.stop()  # type: ignore[attr-defined]
    seen, said = samples[:taken], [(at, message) for at, message in messages if at <= taken]
    if not said or taken <= above:
        return _(
            "started with start(), the monitor took {samples} samples and warned {warnings} times in {bound:g} s, "
            "with one sample due every {interval:g} ms and the count above the threshold for the first {above}: "
            "does its thread tick() every interval?",
            samples=taken,
            warnings=len(said),
            bound=3 * _BOUND_S,
            interval=interval_s * 1000,
            above=above,
        ), ""
    problem = _judge_messages(said, seen, [(1, above, above + 1)])
    return "", problem and _("started with start(): {problem}", problem=problem)


def _stop_waits(monitor_class: MonitorClass, *, threshold: int, sustain: int, interval_s: float) -> str:
    """stop() returns only once the monitor's thread has ended, even while that thread is mid-sample; its
    end is held (`hold_end`) until stop() joins it or has returned, so a stop() that waits for an event the
    thread sets on its way out returns while the thread provably still runs."""
    gate, entered, owners, checker = threading.Event(), threading.Event(), [], threading.current_thread()
    watch = StopWatch()

    def sample() -> Sample:
        if threading.current_thread() is checker:  # a tick from start() itself: not the monitor's thread
            return Sample(0, 0, 0)
        owners.append(threading.current_thread())
        hold_end(watch)
        entered.set()
        gate.wait(3 * _BOUND_S)  # the grader holds the sample here while stop() is waiting (_HOLD_S)
        return Sample(0, 0, 0)

    monitor = monitor_class(
        sample=sample, threshold=threshold, sustain=sustain, interval_s=interval_s, warn=lambda _message: None
    )
    monitor.start()  # type: ignore[attr-defined]
    try:
        if not entered.wait(_BOUND_S):
            return _(
                "after start(), the monitor did not call sample() within {bound:g} s (interval {interval:g} s)",
                bound=_BOUND_S,
                interval=interval_s,
            )
        caller, seen = _stop_in_thread(monitor, owners[:1], watch)
        # The sample is released once stop() has returned (wrong: it did not wait for the thread), or after
        # _HOLD_S if it has not (right: it is still waiting). A join bounded by less than that has given up
        # and returned by then, while the thread is still in its sample; load only makes the hold longer.
        wait_until(lambda: not caller.is_alive(), _HOLD_S)
        gate.set()
        caller.join(_BOUND_S + EXIT_HELD_S)  # a stop() that polls is_alive() waits out the end's hold
        if caller.is_alive():
            return _("stop() had not returned {bound:g} s after the monitor's sample ended", bound=_BOUND_S)
        if "error" in seen:
            return seen["error"]
        if seen["alive"] and not wait_until(lambda: not alive(owners[:1]), _BOUND_S):
            return _("stop() did not end the monitor's thread: it was still running {bound:g} s later", bound=_BOUND_S)
        if seen["alive"]:
            return _("stop() returned while the monitor's thread was still running: wait for it to end (join)")
        return ""
    finally:
        watch.over.set()
        gate.set()


def _stops_in_a_long_interval(monitor_class: MonitorClass, *, threshold: int, sustain: int, long_s: float) -> str:
    """stop() is heard at once, even in the middle of a wait of `long_s` (an hour, say) between samples;
    until then the monitor samples at most once (a first sample at start is fine, a second is early) and
    its threads wait: they neither spin nor wake more often than the waits stop() cuts short explain.

    Two runs: the first with no profile hook, which an answer can see (`sys.getprofile()`) and wait
    rightly only then; the second with `_Waits`' hook, which names what the threads wait in. The kernel
    counts their wake-ups and CPU in both (`_Woken`), out of the answer's reach."""
    options = {"threshold": threshold, "sustain": sustain, "long_s": long_s}
    plain = _idle_run(monitor_class, **options, waits=None)
    if isinstance(plain, str):
        return plain
    with _Waits() as waits:
        watched = _idle_run(monitor_class, **options, waits=waits)
    if isinstance(watched, str):
        return watched
    return (
        waits.slept(watched.monitors)
        or waits.sliced(watched.monitors, waker=watched.caller, interval_s=long_s)
        or _judge_idle(plain, watched, interval_s=long_s)
    )


def _stops_at_once(monitor_class: MonitorClass, *, threshold: int, sustain: int, long_s: float) -> str:
    """Stop a monitor early in a wait of `long_s`, at each of `PROMPT_AT_S` after start(): stop() must not
    be slow at most of them (`slow_at_most`): a monitor that waits in slices on something stop() does not
    wake (a lock's acquire with a timeout, a poll) hears it only when the slice in progress ends."""
    took = []
    for at_s in PROMPT_AT_S:
        before = set(threading.enumerate())
        monitor = monitor_class(
            sample=lambda: Sample(0, 0, 0),
            threshold=threshold,
            sustain=sustain,
            interval_s=long_s,
            warn=lambda _message: None,
        )
        monitor.start()  # type: ignore[attr-defined]
        started = [t for t in threading.enumerate() if t not in before]
        _SLEEP(at_s)
        began = time.monotonic()
        if stopped := _stopped_in_a_wait(monitor, started, long_s)[1]:
            return stopped
        took.append(time.monotonic() - began)
    if slow := slow_at_most(took):
        return _(
            "with interval_s={interval:g}, stop() called early in the wait took {took} s: the monitor waits "
            "in slices on something stop() does not wake, and hears it only when the slice in progress ends "
            "(wait on the stop Event itself)",
            interval=long_s,
            took=slow,
        )
    return ""


class _Idle(NamedTuple):
    """One idle run of a monitor with a long interval: what its threads did while the check waited for a
    second sample (which a right monitor never takes), as the kernel counts it, and who they were."""

    wakeups: int  # times its threads blocked and were woken (voluntary context switches), ended ones too
    busy_s: float  # seconds its threads were on a CPU or waiting for one
    window_s: float  # how long the check waited
    samples: int  # samples taken meanwhile
    explained: int  # threading waits the profile hook saw end in its threads meanwhile (none unwatched)
    monitors: list[threading.Thread]  # the threads it started, and those that sampled
    caller: threading.Thread  # the thread that called stop()


def _idle_run(
    monitor_class: MonitorClass, *, threshold: int, sustain: int, long_s: float, waits: _Waits | None
) -> _Idle | str:
    """Start a monitor with an interval of `long_s`, wait for a second sample, stop it: what its threads
    did meanwhile, or what is wrong with its stop()."""
    before, samples, second = set(threading.enumerate()), [], threading.Event()

    def sample() -> Sample:
        samples.append(threading.current_thread())
        if len(samples) >= 2:
            second.set()
        return Sample(0, 0, 0)

    monitor = monitor_class(
        sample=sample, threshold=threshold, sustain=sustain, interval_s=long_s, warn=lambda _message: None
    )
    woken = _Woken()
    monitor.start()  # type: ignore[attr-defined]
    started = [t for t in threading.enumerate() if t not in before]
    if not started:
        return _("start() started no thread")
    # Only a ticker that does not wait out interval_s samples twice; a right one never does, however long
    # this is. Meanwhile a right monitor's threads block once and stay blocked; one that waits in slices
    # wakes once a slice, one that spins stays on a CPU (or waiting for one, on a loaded machine).
    # An Event, not polling: this thread's own wake-ups would make the monitor's wait for the GIL.
    second.wait(_BOUND_S)
    early = len(samples)
    wakeups, busy_s, window_s = woken.read()
    explained = waits.ended(before) if waits is not None else 0
    caller, stopped = _stopped_in_a_wait(monitor, started, long_s)  # the hook on: it sees what stop() wakes
    if stopped:
        return stopped
    if early > 1:
        return _(
            "with interval_s={interval:g}, the monitor called sample() {early} times within {bound:g} s of start(): "
            "it must tick once every interval_s",
            interval=long_s,
            early=early,
            bound=_BOUND_S,
        )
    return _Idle(wakeups, busy_s, window_s, early, explained, [*started, *samples], caller)


# Wake-ups of an idle monitor's threads in the check's 1 s wait that no right monitor comes near: its
# thread blocks once or twice as it starts (a right one, on an interval of an hour, never wakes again).
# A monitor that waits in 1 ms slices wakes hundreds of times, loaded machine or not.
_SLACK_WAKEUPS = 50
# Wake-ups one threading wait the hook saw end may explain: its own, and a wait for the GIL after it.
_WAKEUPS_PER_WAIT = 3


def _judge_idle(plain: _Idle, watched: _Idle, *, interval_s: float) -> str:
    """What is wrong with how an idle monitor's threads waited, unwatched (`plain`) and with the profile
    hook on (`watched`): counts with wide margins, not durations (a loaded machine wakes no thread more
    often, and keeps a spinning one on a CPU or waiting for one all the same)."""
    waits = watched.explained + watched.samples
    for run in (plain, watched):
        # A thread that waits is on a CPU, or waiting for one, only for a moment after each wake-up; one
        # that is there for half the wait and ended no threading wait spins (a thread that waits in many
        # short slices on its stop Event is explained: on a loaded machine each wake-up waits its turn).
        if run.busy_s > run.window_s / 2 and waits < _SLACK_WAKEUPS:
            return _(
                "with interval_s={interval:g}, the monitor's thread was on a CPU or waiting for one {share:.0%} "
                "of the {window:.1f} s the check waited for a second sample, and waited in nothing: it spins "
                "(polls the clock or a flag), which keeps a CPU busy for as long as the monitor runs; wait on "
                "something stop() wakes, such as its Event, with the interval as timeout",
                interval=interval_s,
                share=run.busy_s / run.window_s,
                window=run.window_s,
            )
    if watched.wakeups > _SLACK_WAKEUPS + _WAKEUPS_PER_WAIT * waits:
        return _(
            "with interval_s={interval:g}, the monitor's threads woke {wakeups} times in the {window:.1f} s the "
            "check waited for a second sample (as the operating system counts them), and only {waits} of those "
            "ended a threading wait: they wait in slices on something stop() does not wake, out of the "
            "grader's sight (a lock's acquire with a timeout, a sleep with the profiler switched off), and hear "
            "stop() only when a slice ends; wait on something stop() wakes, such as its Event",
            interval=interval_s,
            wakeups=watched.wakeups,
            window=watched.window_s,
            waits=watched.explained,
        )
    if plain.wakeups > _SLACK_WAKEUPS + _WAKEUPS_PER_WAIT * watched.wakeups:
        return _(
            "with interval_s={interval:g}, the monitor's threads woke {plain} times in the {window:.1f} s the "
            "check waited for a second sample, but {watched} times when a profile hook was set in them: they "
            "wait one way when they see themselves watched and another (in slices stop() does not cut short) "
            "when not",
            interval=interval_s,
            plain=plain.wakeups,
            window=plain.window_s,
            watched=watched.wakeups,
        )
    return ""


# Bound when the scenario is imported, before an answer runs: what _Woken reads the kernel's counts with.
_getrusage, _open, _listdir, _monotonic = resource.getrusage, open, os.listdir, time.monotonic


def _switches() -> dict[str, int]:
    """Each thread's voluntary context switches so far, by native id (Linux: `/proc/self/task/*/status`):
    the times it blocked (in a wait, a sleep, or for the GIL) and was woken."""
    found = {}
    for tid in _listdir("/proc/self/task"):
        try:
            with _open(f"/proc/self/task/{tid}/status", encoding="ascii", errors="replace") as status:
                for line in status:
                    if line.startswith("voluntary_ctxt_switches:"):
                        found[tid] = int(line.split()[1])
                        break
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
    return found


class _Woken:
    """From its making on, what the kernel counts of the threads started since (out of an answer's reach:
    no hook to remove, no name to shadow): how often they blocked and were woken, those that ended
    included (the process's total, `getrusage`, less the threads that were there before), and how long
    those still running were on a CPU or waiting for one."""

    def __init__(self) -> None:
        # The threads first, then the process (and the reverse in read()): a wake-up of a thread that was
        # there before, in between, is never counted as one of the new threads'.
        self._threads = _switches()
        self._process = _getrusage(resource.RUSAGE_SELF).ru_nvcsw
        self._began = _monotonic()

    def read(self) -> tuple[int, float, float]:
        """The new threads' wake-ups and busy seconds so far, and the seconds since the start."""
        process = _getrusage(resource.RUSAGE_SELF).ru_nvcsw - self._process
        window_s = _monotonic() - self._began
        now = _switches()
        earlier = sum(now[tid] - count for tid, count in self._threads.items() if tid in now)
        new = {int(tid) for tid in now if tid not in self._threads}
        return process - earlier, busy_seconds(only=new), window_s


_SLEEP = time.sleep  # bound when the scenario is imported, before an answer runs


class _Waits:
    """While in use, a profile hook in the threads started meanwhile (it sees a call however the answer
    names it) notes what they wait in: the threads that call `time.sleep`, the waits on a
    `threading.Condition` (what every threading wait is) that ended, and those that ended by their
    timeout, and the Conditions each thread woke."""

    def __init__(self) -> None:
        self.sleepers: set[threading.Thread] = set()
        self.timed_out: list[tuple[threading.Thread, threading.Condition]] = []
        self.woken: list[tuple[threading.Thread, threading.Condition]] = []
        self.waited: list[threading.Thread] = []  # the thread of every wait that ended (a look with 0 is none)
        self._previous = threading.getprofile()

    def __enter__(self) -> _Waits:
        threading.setprofile(self._hook)
        return self

    def __exit__(self, *exc_info: object) -> None:
        threading.setprofile(self._previous)

    def _hook(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and arg is _SLEEP:
            self.sleepers.add(threading.current_thread())
        elif event == "call" and frame.f_code is CONDITION_NOTIFY:
            self.woken.append((threading.current_thread(), frame.f_locals["self"]))
        elif event == "return" and frame.f_code is CONDITION_WAIT:
            timeout = frame.f_locals.get("timeout")
            if timeout is None or (isinstance(timeout, (int, float)) and timeout > 0):  # a wait of 0 only looks
                self.waited.append(threading.current_thread())
                if arg is False and timeout is not None:
                    self.timed_out.append((threading.current_thread(), frame.f_locals["self"]))

    def ended(self, before: set[threading.Thread]) -> int:
        """How many waits ended so far in threads that are not among `before`."""
        return sum(thread not in before for thread in list(self.waited))

    def slept(self, threads: Iterable[threading.Thread]) -> str:
        """What is wrong if one of `threads` (the monitor's) slept."""
        if self.sleepers.isdisjoint(threads):
            return ""
        return _(
            "the monitor's thread waited in time.sleep(), which stop() cannot cut short: it hears stop() only "
            "once the sleep is over (wait on an Event with a timeout instead)"
        )

    def sliced(self, threads: Iterable[threading.Thread], *, waker: threading.Thread, interval_s: float) -> str:
        """What is wrong if one of `threads` (the monitor's, with an interval of `interval_s`, which no wait
        of theirs should see end) waited, until its timeout, on something `waker` (the thread that called
        stop()) never woke: slices, which stop() cannot cut short, however short they are."""
        monitors, woken = set(threads), [condition for thread, condition in self.woken if thread is waker]
        slices = [c for thread, c in self.timed_out if thread in monitors and all(c is not w for w in woken)]
        if not slices:
            return ""
        return _(
            "with interval_s={interval:g}, the monitor's thread waited in slices on something stop() does not "
            "wake ({count} such waits ended by their timeout): stop() cannot cut a slice short, it is heard "
            "only when one ends; wait on something stop() wakes, such as its Event",
            interval=interval_s,
            count=len(slices),
        )


def _with_block_leaves_nothing(monitor_class: MonitorClass, *, threshold: int, sustain: int, interval_s: float) -> str:
    before, samples, checker = thread_ids(), [], threading.current_thread()

    def sample() -> Sample:
        if threading.current_thread() is not checker:
            samples.append(threading.current_thread())
        return Sample(0, 0, 0)

    monitor = monitor_class(
        sample=sample, threshold=threshold, sustain=sustain, interval_s=interval_s, warn=lambda _message: None
    )
    with _Waits() as waits, monitor as entered:  # type: ignore[attr-defined]
        if entered is not monitor:
            return _("`with Monitor(...) as monitor:` should give the monitor; it gave {entered!r}", entered=entered)
        wait_until(lambda: len(samples) >= 2, _BOUND_S)  # between two samples: the wait for the second
    if alive(samples):
        return _("after the `with` block, the monitor's thread was still running")
    if waits.slept(samples):
        return waits.slept(samples)
    wait_until(lambda: thread_ids() <= before, 0.5)  # join() returns just before the OS removes a thread
    if thread_ids() - before:
        return _(
            "after the `with` block, {threads} threads it started were still running",
            threads=len(thread_ids() - before),
        )
    return ""


def probe(
    monitor_class: MonitorClass,
    *,
    threshold: int = 10,
    sustain: int = 3,
    interval_s: float = 0.005,
    bursts: int = 3,
    episodes: int = 2,
    long_interval_s: float = 3600.0,
) -> tuple[Awaitable[object], Callable[[], dict]]:
    """The checks a grader runs against a monitor class, and a summary of them."""
    checks = Checks()
    options = {"threshold": threshold, "sustain": sustain}

    async def run() -> None:
        quiet = await _attempt(_healthy_bursts(monitor_class, **options, bursts=bursts))
        try:
            first_alert, messages, spoke = await _leak_episodes(monitor_class, **options, episodes=episodes)
        except Exception as exc:
            first_alert = messages = described(exc)
            spoke = False
        if not quiet and not spoke:  # silence is only worth something from a monitor that does alert
            quiet = _("no warning for the healthy service, but none for the leaking one either: it never warns")
        checks.record("quiet_for_healthy_bursts", quiet)
        live = await _in_thread(lambda: _alerts_live(monitor_class, **options, interval_s=interval_s))
        silent, live_messages = (live, "") if isinstance(live, str) else live  # a str: the check itself failed
        checks.record("alerts_for_the_leak", first_alert or silent)
        checks.record("one_alert_one_recovery", messages or live_messages)
        stops = await _in_thread(lambda: _stop_waits(monitor_class, **options, interval_s=interval_s))
        stops = stops or await _in_thread(
            lambda: _with_block_leaves_nothing(monitor_class, **options, interval_s=interval_s)
        )
        # Those that may leave a thread sleeping for `long_interval_s` come last, the quicker first: a monitor
        # that fails it (slices of half a second, say) would not leave the slower time within the budget.
        stops = stops or await _in_thread(lambda: _stops_at_once(monitor_class, **options, long_s=long_interval_s))
        stops = stops or await _in_thread(
            lambda: _stops_in_a_long_interval(monitor_class, **options, long_s=long_interval_s)
        )
        checks.record("stops_cleanly", stops)

    return run(), checks.summary


# The scenario contract (leaklab.scenarios): the names an answer cell may use besides `asyncio`.
ANSWER = "Monitor"  # the name the task has the answer cell bind, whatever object it binds there
ANSWER_NAMES = ("Sample", "threading", "time")
