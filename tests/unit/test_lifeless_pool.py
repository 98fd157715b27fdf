from __future__ import annotations

import threading

import pytest
from answers_04 import (
    COLLECTOR_THREAD,
    DIES_ON_FAILURE,
    DROPS_QUEUED_JOBS,
    EXECUTOR,
    EXIT_ONLY_SIGNALS,
    FIXED,
    HANDLES_IN_SUBMIT,
    JOINS_FIRST_ONLY,
    LAZY_RESULTS,
    LOWLEVEL_THREADS,
    LYING_THREADS,
    MADE_UP_IN_STOP,
    MADE_UP_RESULTS,
    NEVER_STOPS,
    NO_JOIN,
    ONE_WORKER,
    POLLS_IS_ALIVE,
    QUEUE_JOIN,
    REPLACES_DEAD_WORKER,
    SHARED_RESULTS,
    SLEEPS_INSTEAD_OF_JOIN,
    SLEEPS_LONGER,
    STDLIB_THREADPOOL,
    STOPS_ONLY_ON_SUCCESS,
    STUB,
    SWALLOWS_ERRORS,
    THREAD_SUBCLASS_JOINS,
    THREADS_IN_INIT,
    WAIT_GROUP,
)
from outcomes import checks_ran

from leaklab import run_isolated
from leaklab.scenarios import lifeless_pool
from leaklab.scenarios.lifeless_pool import JobFailed, Stops, handle, leaky_process_batch, run_batches

PROPERTIES = ("stop_waits_for_workers", "every_job_accounted_for", "failure_keeps_worker", "no_worker_survives")


# The hidden tests' traffic, drawn by Hypothesis for each answer (`traffic="generated"`), besides the planned burst.
TRAFFIC = {"planned": {}, "drawn": {"traffic": "generated", "jobs": 50, "batches": 8}}


def run(source: str, **options):
    return run_isolated(source, scenario="lifeless_pool", function="Pool", **options)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the failing jobs, on purpose
def test_the_leaky_batch_is_right_and_leaves_its_workers_waiting():
    before = set(threading.enumerate())
    assert leaky_process_batch([1, 2, 3]) == [1, 4, 9]
    leaked = [t for t in threading.enumerate() if t not in before]
    assert len(leaked) == 4 and {t.name for t in leaked} == {"batch-worker"}
    for thread in leaked:  # the only way out for them: a job that fails kills its worker
        thread._args[0].put(-1)  # type: ignore[attr-defined] - the batch's job queue
    for thread in leaked:
        thread.join(2.0)
    assert not any(t.is_alive() for t in leaked)


def test_handle_squares_and_fails_below_zero():
    assert handle(3) == 9
    with pytest.raises(JobFailed):
        handle(-1)


def pool_of(source: str) -> type:
    """The Pool class an answer cell defines, with the names the grader gives it."""
    namespace = {name: getattr(lifeless_pool, name) for name in lifeless_pool.ANSWER_NAMES}
    exec(source, namespace)
    return namespace["Pool"]


def demo(source: str) -> Stops:
    """The notebook's demo traffic through an answer's pool, small, then its stragglers left to end."""
    stops = run_batches(pool_of(source), batches=4, jobs=12, every_s=0.0)  # the long last queue: 120 ms of work
    for thread in stops.workers:
        thread.join(5.0)
    return stops


def test_the_demo_shows_nothing_undone_for_the_fix():
    stops = demo(FIXED)
    assert stops.endings == ["with", "stop()", "with", "stop()", "stop()"]
    assert stops.running_when_stopped() == 0 and stops.stops_with_jobs_missing() == 0
    assert stops.failing_reported == [(1, 1)] * 5
    assert "jobs missing from results as stop returned: 0 of 293" in stops.summary()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the dying workers, on purpose
@pytest.mark.parametrize(
    ("source", "running", "missing"),
    [
        (NO_JOIN, {"with", "stop()"}, {"with", "stop()"}),  # plots like the fix by its thread count alone
        (EXIT_ONLY_SIGNALS, {"with"}, {"with"}),
        (DROPS_QUEUED_JOBS, set(), {"with", "stop()"}),
        (DIES_ON_FAILURE, set(), {"with", "stop()"}),
        (SLEEPS_INSTEAD_OF_JOIN, {"stop()"}, {"stop()"}),  # only the long last queue outlasts its sleep
    ],
    ids=["no_join", "exit_only_signals", "drops_queued_jobs", "dies_on_failure", "sleeps_instead_of_join"],
)
def test_the_demo_shows_each_half_fix(source, running, missing):
    stops = demo(source)
    assert {end for end, n in zip(stops.endings, stops.running_at_return, strict=True) if n} == running
    assert {end for end, n in zip(stops.endings, stops.missing_at_return, strict=True) if n} == missing


@pytest.mark.parametrize(
    ("source", "failing"),
    [
        (FIXED, set()),
        (EXECUTOR, set()),
        (NO_JOIN, {"stop_waits_for_workers", "every_job_accounted_for", "no_worker_survives"}),
        (EXIT_ONLY_SIGNALS, {"no_worker_survives"}),
        (SLEEPS_INSTEAD_OF_JOIN, {"stop_waits_for_workers", "every_job_accounted_for"}),
        (DROPS_QUEUED_JOBS, {"every_job_accounted_for"}),
        (DIES_ON_FAILURE, {"every_job_accounted_for", "failure_keeps_worker"}),
        (NEVER_STOPS, {"stop_waits_for_workers", "every_job_accounted_for", "no_worker_survives"}),
        (STOPS_ONLY_ON_SUCCESS, {"no_worker_survives"}),
        (SWALLOWS_ERRORS, {"no_worker_survives"}),
        (HANDLES_IN_SUBMIT, {"every_job_accounted_for"}),
        (LAZY_RESULTS, {"every_job_accounted_for"}),
        (MADE_UP_RESULTS, {"every_job_accounted_for"}),
        (MADE_UP_IN_STOP, {"every_job_accounted_for"}),
        (ONE_WORKER, {"stop_waits_for_workers"}),
        (THREAD_SUBCLASS_JOINS, set()),
        (REPLACES_DEAD_WORKER, {"failure_keeps_worker"}),
        (LYING_THREADS, {"stop_waits_for_workers", "no_worker_survives"}),
        (STDLIB_THREADPOOL, set()),  # its helper threads beside the workers are no fault
        (COLLECTOR_THREAD, set()),
        (POLLS_IS_ALIVE, set()),  # waits for its workers without join(): their exits are held the longest
        (THREADS_IN_INIT, {"stop_waits_for_workers"}),  # a pool made and never started leaves its workers
        (STUB, set(PROPERTIES)),
    ],
    ids=[
        "fixed",
        "executor",
        "no_join",
        "exit_only_signals",
        "sleeps_instead_of_join",
        "drops_queued_jobs",
        "dies_on_failure",
        "never_stops",
        "stops_only_on_success",
        "swallows_errors",
        "handles_in_submit",
        "lazy_results",
        "made_up_results",
        "made_up_in_stop",
        "one_worker",
        "thread_subclass_joins",
        "replaces_dead_worker",
        "lying_threads",
        "stdlib_threadpool",
        "collector_thread",
        "polls_is_alive",
        "threads_in_init",
        "stub",
    ],
)
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_each_answer_fails_exactly_what_it_breaks(source, failing, traffic):
    result = run(source, **TRAFFIC[traffic])
    assert result.error is None
    assert {name for name in PROPERTIES if result.outcome[name][0] < result.outcome[name][1]} == failing
    checks_ran(result)


def test_a_stdlib_thread_pool_leaves_nothing_a_collection_does_not_free():
    # GIVEN multiprocessing's ThreadPool, closed and joined: its wake-up pipe goes only with its garbage
    result = run(STDLIB_THREADPOOL)
    # THEN lesson 04, about threads, counts open files after a collection: no leftover
    result.require_no_leftovers()


@pytest.mark.parametrize(
    ("source", "failing"),
    [
        (JOINS_FIRST_ONLY, "stop_waits_for_workers"),  # also (d), when a worker is slow to end: timing
        (SHARED_RESULTS, "every_job_accounted_for"),
        (LOWLEVEL_THREADS, "stop_waits_for_workers"),
        (QUEUE_JOIN, "stop_waits_for_workers"),  # its workers still run, past their last task_done
        (SLEEPS_LONGER, "stop_waits_for_workers"),
        (WAIT_GROUP, "stop_waits_for_workers"),  # the same: past the counter's last decrement
    ],
    ids=["joins_first_only", "shared_results", "lowlevel_threads", "queue_join", "sleeps_longer", "wait_group"],
)
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_what_an_answer_breaks_fails_every_time(source, failing, traffic):
    # GIVEN a held worker for each of the pool's: stop() is judged by the order things happen in, not by timing
    result = run(source, **TRAFFIC[traffic])
    assert result.error is None
    assert result.outcome[failing][0] < result.outcome[failing][1]
    assert result.outcome["failure_keeps_worker"] == [1, 1]


def test_threads_started_outside_threading_are_in_the_leak_report():
    result = run(LOWLEVEL_THREADS)
    with pytest.raises(AssertionError, match=r"(?s)4 threads\).*_work  <answer cell>"):
        result.require_no_leftovers()


def test_only_the_graders_held_jobs_hold_a_worker():
    hold = lifeless_pool._Held()
    lifeless_pool._HELD[lifeless_pool._FIRST_HELD] = hold
    try:
        assert handle(lifeless_pool._FIRST_HELD) == lifeless_pool._FIRST_HELD**2  # the grader's own thread: not held
        assert not hold.taken.is_set()
    finally:
        del lifeless_pool._HELD[lifeless_pool._FIRST_HELD]
