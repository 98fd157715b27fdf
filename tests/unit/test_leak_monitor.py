from __future__ import annotations

import asyncio
import threading

import pytest
from answers_06 import (
    BUSY_WAIT,
    DONE_EVENT,
    EVENT_LOOP_THREAD,
    FAST_CADENCE,
    FIXED,
    FLOOD,
    GE_THRESHOLD,
    JOIN_BOUNDED,
    JOIN_IN_STEPS,
    JOIN_WITH_SHORT_TIMEOUT,
    LOCK_HALF_SECOND_SLICES,
    LOCK_SLICES,
    LOWLEVEL_THREAD,
    LYING_THREAD,
    NEVER_REARMS,
    NEVER_STOPPED,
    NEVER_WARNS,
    NO_JOIN,
    NO_RETURN,
    NO_SUSTAIN,
    NOT_CONSECUTIVE,
    POLLS_IN_SLICES,
    PRIVATE_EVENT_LONG_SLICES,
    PRIVATE_EVENT_SLICES,
    RECOVERS_ONLY_UNDER,
    SCHEDULED,
    SILENT_RECOVERY,
    SLEEP_LOOP,
    SLEEPS_UNLESS_LONG,
    SLICES_UNLESS_WATCHED,
    STOP_EVENT_FINE_SLICES,
    STOP_EVENT_SLICES,
    STUB,
    THREAD_FLOODS,
    UNHOOKS_AND_SLEEPS,
    WAITS_WHEN_WATCHED,
    WINDOW,
    WINDOWED_SERIES,
)
from outcomes import checks_ran

from leaklab import run_isolated
from leaklab.scenarios._checks import wait_until
from leaklab.scenarios.leak_monitor import (
    BUFFER_BYTES,
    THRESHOLD,
    AlertLog,
    ArticleMonitor,
    Gauge,
    HealthyService,
    LeakyService,
    Lifecycle,
    Sample,
    process_sampler,
    rss_bytes,
)

PROPERTIES = ("alerts_for_the_leak", "quiet_for_healthy_bursts", "one_alert_one_recovery", "stops_cleanly")


def run(source: str, **options):
    return run_isolated(source, scenario="leak_monitor", function="Monitor", **options)


def test_the_leaky_service_keeps_a_task_per_request_and_a_thread_every_fourth_until_shutdown():
    async def main():
        service = LeakyService()
        before = process_sampler()
        await service.serve(requests=12, every_s=0)
        await asyncio.sleep(0.01)
        leaked, seen_by_process = service.sample(), before()
        await service.shutdown()
        return leaked, seen_by_process, service.sample()

    leaked, seen_by_process, after = asyncio.run(main())
    assert (leaked.tasks, leaked.threads, leaked.total) == (12, 3, 15)
    assert (seen_by_process.tasks, seen_by_process.threads) == (12, 3)  # the process sees them too
    assert (after.tasks, after.threads) == (0, 0)


def test_the_healthy_service_goes_back_to_zero_after_each_burst():
    async def main():
        service, counts = HealthyService(), []
        service.start_burst(30)
        await asyncio.sleep(0)
        counts.append(service.sample().total)
        await service.finish_burst()
        counts.append(service.sample().total)
        await service.serve(bursts=2, size=10, work_s=0.001, pause_s=0.001)
        counts.append(service.sample().total)
        return counts

    assert asyncio.run(main()) == [30, 0, 0]


def test_the_article_monitor_warns_on_every_tick_above_the_threshold_and_never_ends_by_itself():
    messages: list[str] = []
    gauge = Gauge()
    monitor = ArticleMonitor(sample=lambda: Sample(THRESHOLD, 1, 0), gauge=gauge, warn=messages.append)
    monitor.start()
    try:
        assert wait_until(lambda: len(messages) >= 3)
        assert messages[0] == f"WARNING: unusual goroutine count: {THRESHOLD + 1}"  # a flood, one per tick
        assert gauge.value == THRESHOLD + 1 and gauge.updates >= len(messages)
        assert monitor.running() and not hasattr(monitor, "stop")  # the Go code has no stop
    finally:
        monitor.exit_process()  # the stand-in for the process exiting
    assert not monitor.running()
    assert not monitor.ticker_stopped()  # the deferred ticker.Stop() never ran


def test_the_article_monitor_is_quiet_at_the_threshold():
    messages: list[str] = []
    gauge = Gauge()
    monitor = ArticleMonitor(sample=lambda: Sample(THRESHOLD, 0, 0), gauge=gauge, warn=messages.append)
    monitor.start()
    try:
        assert wait_until(lambda: gauge.updates >= 2)
    finally:
        monitor.exit_process()
    assert messages == [] and gauge.value == THRESHOLD


def test_the_process_sampler_leaves_out_the_thread_that_calls_it():
    sample = process_sampler()
    seen: list[Sample] = []
    caller = threading.Thread(target=lambda: seen.append(sample()))
    caller.start()
    caller.join()
    assert (seen[0].tasks, seen[0].threads) == (0, 0)  # the thread that samples is the monitor's own
    assert BUFFER_BYTES < seen[0].rss_bytes and abs(seen[0].rss_bytes - rss_bytes()) < 64 * 2**20


def test_the_alert_log_keeps_messages_with_their_time():
    log = AlertLog()
    assert str(log) == "(no message)"
    log("ALERT")
    assert len(log) == 1 and log.alerts[0][0] >= 0 and str(log).endswith("ms  ALERT")
    assert log.markers("leak: ") == [(log.alerts[0][0], "leak: ALERT")]
    log("RESOLVED: back under 40")
    log("ALERT\uff1a\u4efb\u52a1\u592a\u591a")  # a Chinese learner's alert: its colon full width
    assert [label for _, label in log.markers()] == ["ALERT", "RESOLVED", "ALERT"]
    assert log.since(log.alerts[0][0]) == log.alerts[1:]


class _Thready:
    """A monitor stand-in: a thread that waits for its stop event; `joins` says whether stop() waits."""

    def __init__(self, *, joins: bool) -> None:
        self.joins, self._stop = joins, threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._release = threading.Event()

    def _run(self) -> None:
        self._stop.wait()
        self._release.wait(1.0)  # an ending that takes a moment after the stop signal

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.joins:
            self._release.set()
            self._thread.join()


@pytest.mark.parametrize("joins", [True, False])
def test_the_lifecycle_says_whether_stop_waited_for_the_thread(joins):
    monitor = _Thready(joins=joins)
    lifecycle = Lifecycle(monitor)
    with lifecycle as entered:
        assert entered is monitor
    assert lifecycle.stopped is not None and lifecycle.stopped.still_running is not joins
    assert ("still running" in str(lifecycle.stopped)) is not joins
    monitor._release.set()
    monitor._thread.join()


@pytest.mark.parametrize(
    ("source", "failing", "leaves"),
    [
        (FIXED, set(), False),
        (WINDOW, set(), False),
        (FLOOD, {"one_alert_one_recovery"}, False),
        (SILENT_RECOVERY, {"one_alert_one_recovery"}, False),
        (NEVER_REARMS, {"one_alert_one_recovery"}, False),
        (NO_SUSTAIN, {"quiet_for_healthy_bursts"}, False),
        (NOT_CONSECUTIVE, {"quiet_for_healthy_bursts"}, False),
        (NO_JOIN, {"stops_cleanly"}, False),
        (LYING_THREAD, {"stops_cleanly"}, False),
        (JOIN_WITH_SHORT_TIMEOUT, {"stops_cleanly"}, False),
        (NEVER_WARNS, {"alerts_for_the_leak", "quiet_for_healthy_bursts", "one_alert_one_recovery"}, False),
        (GE_THRESHOLD, {"quiet_for_healthy_bursts", "one_alert_one_recovery"}, False),
        (RECOVERS_ONLY_UNDER, {"quiet_for_healthy_bursts", "one_alert_one_recovery"}, False),
        (LOWLEVEL_THREAD, {"stops_cleanly"}, False),
        (NEVER_STOPPED, {"stops_cleanly"}, True),
        (SLEEP_LOOP, {"stops_cleanly"}, False),
        (FAST_CADENCE, {"stops_cleanly"}, False),
        (THREAD_FLOODS, {"one_alert_one_recovery"}, False),
        (SLEEPS_UNLESS_LONG, {"stops_cleanly"}, False),
        (POLLS_IN_SLICES, {"stops_cleanly"}, False),
        (NO_RETURN, {"alerts_for_the_leak"}, False),
        (STUB, set(PROPERTIES), False),
        (STOP_EVENT_SLICES, set(), False),
        (JOIN_IN_STEPS, set(), False),
        (PRIVATE_EVENT_SLICES, {"stops_cleanly"}, False),
        (PRIVATE_EVENT_LONG_SLICES, {"stops_cleanly"}, False),
        (JOIN_BOUNDED, {"stops_cleanly"}, False),
        (WINDOWED_SERIES, {"alerts_for_the_leak"}, False),
        (BUSY_WAIT, {"stops_cleanly"}, False),
        (LOCK_SLICES, {"stops_cleanly"}, False),
        (LOCK_HALF_SECOND_SLICES, {"stops_cleanly"}, False),  # few wakes: stop() early in a wait is slow
        (WAITS_WHEN_WATCHED, {"stops_cleanly"}, True),  # its thread sleeps on, for an hour
        (SLICES_UNLESS_WATCHED, {"stops_cleanly"}, False),
        (UNHOOKS_AND_SLEEPS, {"stops_cleanly"}, False),
        (STOP_EVENT_FINE_SLICES, set(), False),
        (SCHEDULED, set(), False),
        (EVENT_LOOP_THREAD, set(), False),
        (DONE_EVENT, {"stops_cleanly"}, False),  # waits for an event the thread sets on its way out
    ],
    ids=[
        "fixed",
        "window",
        "flood",
        "silent_recovery",
        "never_rearms",
        "no_sustain",
        "not_consecutive",
        "no_join",
        "lying_thread",
        "join_with_short_timeout",
        "never_warns",
        "ge_threshold",
        "recovers_only_under",
        "lowlevel_thread",
        "never_stopped",
        "sleep_loop",
        "fast_cadence",
        "thread_floods",
        "sleeps_unless_long",
        "polls_in_slices",
        "no_return",
        "stub",
        "stop_event_slices",
        "join_in_steps",
        "private_event_slices",
        "private_event_long_slices",
        "join_bounded",
        "windowed_series",
        "busy_wait",
        "lock_slices",
        "lock_half_second_slices",
        "waits_when_watched",
        "slices_unless_watched",
        "unhooks_and_sleeps",
        "stop_event_fine_slices",
        "scheduled",
        "event_loop_thread",
        "done_event",
    ],
)
def test_each_answer_fails_exactly_what_it_breaks(source, failing, leaves):
    result = run(source)
    assert result.error is None
    assert {name for name in PROPERTIES if result.outcome[name][0] < result.outcome[name][1]} == failing
    checks_ran(result)
    assert bool(result.leftover_tasks or result.leftover_threads) == leaves


@pytest.mark.parametrize(
    "source",
    [FIXED, NO_SUSTAIN, FLOOD, GE_THRESHOLD, NEVER_WARNS, RECOVERS_ONLY_UNDER],
    ids=["fixed", "no_sustain", "flood", "ge", "mute", "only_under"],
)
def test_the_hidden_options_give_the_same_verdicts(source):
    hidden = {"threshold": 25, "sustain": 5, "bursts": 5, "interval_s": 0.002, "long_interval_s": 600.0}
    default, other = run(source), run(source, **hidden)
    assert other.error is None
    assert {n: other.outcome[n][0] for n in PROPERTIES} == {n: default.outcome[n][0] for n in PROPERTIES}
