from __future__ import annotations

import queue
import threading
import time

import pytest
from answers_02 import DROPS_FAILED_JOBS, FIXED, JOINS_BUT_SLEEPS, LEAKY, NO_BACKOFF, SIGNALS_ONLY, SPINS, STUB

from leaklab import run_isolated
from leaklab.scenarios.skipped_stop import Dependency, LeakyWorker, SpinningWorker, busy_seconds, restart_while_down

PROPERTIES = ("stops_promptly", "counts_errors", "idle_without_spinning", "work_gets_done")


# The hidden tests' traffic, drawn by Hypothesis for each answer (`traffic="generated"`), besides the planned burst.
TRAFFIC = {"planned": {}, "drawn": {"traffic": "generated", "jobs": 10}}


def run(source: str, **options):
    return run_isolated(source, scenario="skipped_stop", function="Worker", **options)


def failed(result) -> set[str]:
    return {name for name in PROPERTIES if result.outcome[name][0] < result.outcome[name][1]}


def test_a_restarted_leaky_worker_leaves_one_thread_per_restart():
    before = {t for t in threading.enumerate()}
    dependency = restart_while_down(LeakyWorker, cycles=3, every_s=0.0)
    leaked = [t for t in threading.enumerate() if t not in before]
    try:
        assert len(leaked) == 3 and {t.name for t in leaked} == {"leaky-worker"}
        calls = dependency.calls
        time.sleep(0.1)
        assert dependency.calls > calls  # stopped workers keep calling the dead dependency
    finally:
        dependency.recover()  # the only way out: the retry succeeds, then the stop signal is seen
        for thread in leaked:
            thread.join(2.0)
    assert not any(t.is_alive() for t in leaked)


def test_busy_seconds_tells_a_spinning_thread_from_a_waiting_one():
    shares = {}
    for worker_class in (LeakyWorker, SpinningWorker):
        worker = worker_class(queue.Queue(), Dependency())
        worker.start()
        mine = {worker._thread.native_id}
        before = busy_seconds(only=mine)
        time.sleep(0.2)
        shares[worker_class] = (busy_seconds(only=mine) - before) / 0.2
        worker.stop()
        worker._thread.join(2.0)
    assert shares[LeakyWorker] < 0.25 < 0.75 < shares[SpinningWorker]


@pytest.mark.parametrize(
    ("source", "failing"),
    [
        (FIXED, set()),
        (LEAKY, {"stops_promptly"}),
        (JOINS_BUT_SLEEPS, {"stops_promptly"}),
        (SIGNALS_ONLY, {"stops_promptly"}),
        (DROPS_FAILED_JOBS, {"work_gets_done"}),
        (SPINS, {"idle_without_spinning"}),
        (NO_BACKOFF, {"counts_errors"}),
        (STUB, set(PROPERTIES)),
    ],
    ids=["fixed", "leaky", "joins_but_sleeps", "signals_only", "drops_failed_jobs", "spins", "no_backoff", "stub"],
)
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_each_answer_fails_exactly_the_properties_it_breaks(source, failing, traffic):
    result = run(source, **TRAFFIC[traffic])
    assert result.error is None
    assert failed(result) == failing, result.outcome["problems"]


def test_a_worker_that_outlives_stop_is_reported_where_it_waits():
    result = run(LEAKY)
    assert result.leftover_threads == 1
    assert "1 @ thread" in result.leak_report and "_run  <answer cell>:" in result.leak_report
    with pytest.raises(AssertionError, match="stops promptly: 0 of 1 checks\nstops promptly: stop"):
        result.require("stops_promptly")
    run(FIXED).require_no_leftovers()
