"""Lesson 01's notebook burst: `serve_and_settle` counts what a handler left, and the heap a recording ends
with is the handler's own, not the burst's records nor garbage waiting for the collector."""

from __future__ import annotations

import asyncio

import pytest
from answers import (
    BUFFERED,
    DEADLINE_EXCEEDED,
    DIRECT,
    EARLY_TIMEOUT,
    GIVES_UP_50MS_LATE,
    GIVES_UP_A_SECOND_LATE,
    JOIN_WITH_TIMEOUT,
    LAZY_IN_FLIGHT_SET,
    LAZY_JANITOR,
    LEAKS_ON_FIRST_CALL,
    LINGERS_WHEN_CANCELLED,
    NAMES_ITSELF_LEAKLAB,
    SHORT_DEADLINES_ONLY,
    SKIPS_FIRST_CALL,
    SLEEPS_OUT_THE_DEADLINE,
    WATCHES_THE_CLIENT,
)

from leaklab import Recorder, run_isolated
from leaklab.grading.results import Reason
from leaklab.scenarios.forgotten_cancel import (
    PAYLOAD_BYTES,
    Request,
    Result,
    background_tasks,
    leaky_handle_request,
    probe,
    serve_and_settle,
    slow_query,
)

REQUESTS = 40


def _defined(source: str, name: str):
    """An answer of tests/answers.py, defined here as its cell defines it."""
    namespace = {"asyncio": asyncio, "background_tasks": background_tasks, "slow_query": slow_query}
    namespace |= {"Request": Request, "Result": Result}
    exec(source, namespace)
    return namespace[name]


buffered_handle_request = _defined(BUFFERED, "handle_request")  # the article's fix: the query runs to its end


async def stub_handle_request(request):
    """The exercise as released."""
    raise NotImplementedError()


async def settle(handler):
    async with Recorder("settle") as recorder:
        tally = await serve_and_settle(handler, requests=REQUESTS)
    stuck = list(background_tasks)
    for task in stuck:
        task.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)
    return tally, recorder.recording


def test_the_leaky_handler_leaves_a_task_and_a_result_per_request_that_gave_up():
    tally, recording = asyncio.run(settle(leaky_handle_request))
    assert (tally.completed, tally.gave_up, tally.unanswered) == (REQUESTS // 2, REQUESTS // 2, 0)
    assert tally.left_alive == tally.gave_up
    assert recording.heap_growth_bytes >= tally.gave_up * PAYLOAD_BYTES


def test_the_articles_fix_ends_with_nothing_held():
    # The handler's TimeoutError holds its frame, and the result in it, in a reference cycle: counted as
    # held unless the collector runs before the last sample.
    tally, recording = asyncio.run(settle(buffered_handle_request))
    assert (tally.left_alive, tally.problems) == (0, ())
    assert recording.heap_growth_bytes < REQUESTS * PAYLOAD_BYTES // 16


def test_the_stub_says_so():
    with pytest.raises(NotImplementedError, match="stub"):
        asyncio.run(settle(stub_handle_request))


def _probed(source: str, **options) -> dict:
    """The grader's burst, run here against an answer of tests/answers.py."""

    async def main():
        burst, summary = probe(_defined(source, "handle_request"), **options)
        await burst
        return summary()

    return asyncio.run(main())


def test_a_handler_that_times_out_before_the_deadline_gives_up_as_not_specified():
    summary = _probed(EARLY_TIMEOUT)
    assert summary["gave_up_as_specified"][0] < summary["gave_up_as_specified"][1]
    assert any("TimeoutError after" in line for line in summary["problems"])
    assert _probed(DIRECT)["gave_up_as_specified"] == [20, 20]


def test_the_probes_burst_ends_once_every_query_has_ended_and_a_lingering_child_is_still_pending():
    async def main():
        before = asyncio.all_tasks()
        burst, summary = probe(_defined(JOIN_WITH_TIMEOUT, "handle_request"))
        await burst
        pending = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending), summary()

    pending, summary = asyncio.run(main())
    assert summary["gave_up_as_specified"] == [20, 20] and pending >= 20  # a child per request that gave up


def test_a_drawn_burst_has_a_request_past_a_long_deadline():
    """The drawn burst has one request with a deadline of 1-3 s and a query longer still: a handler that
    enforces only short deadlines waits for its query, the direct fix times out as specified."""
    drawn = {"traffic": "generated", "requests": 40}
    ignored = run_isolated(SHORT_DEADLINES_ONLY, scenario="forgotten_cancel", function="handle_request", **drawn)
    passed, total = ignored.outcome["gave_up_as_specified"]
    assert ignored.error is None and passed < total
    assert any("ended with result, expected TimeoutError" in problem for problem in ignored.outcome["problems"])
    fixed = run_isolated(DIRECT, scenario="forgotten_cancel", function="handle_request", **drawn)
    passed, total = fixed.outcome["gave_up_as_specified"]
    assert fixed.error is None and passed == total


def _isolated(source: str):
    return run_isolated(source, scenario="forgotten_cancel", function="handle_request")


def test_the_first_call_is_judged_and_what_it_leaves_counts():
    """The grader's warm-up (a handler's first calls, before memory is measured) is judged with the burst:
    a first call that skips the query fails, and a task started then and still pending is left behind."""
    skipped = _isolated(SKIPS_FIRST_CALL)
    assert skipped.error is None
    passed, total = skipped.outcome["completed_with_result"]
    assert (passed, total) == (total - 1, REQUESTS // 2 + 2)  # the warm-up's two requests complete
    assert skipped.outcome["requests"] == skipped.outcome["answered"] == REQUESTS + 2
    assert "request 0 (complete)" in skipped.outcome["problems"][0]
    assert _isolated(LEAKS_ON_FIRST_CALL).leftover_tasks == 1  # its child, in join()
    assert _isolated(LAZY_JANITOR).leftover_tasks == 1  # the janitor, for ever
    right = _isolated(LAZY_IN_FLIGHT_SET)
    assert right.error is None and right.leftover_tasks == 0
    assert right.outcome["completed_with_result"] == [REQUESTS // 2 + 2] * 2


GRADED = ("completed_with_result", "gave_up_as_specified", "query_ran_once", "gave_up_promptly")


@pytest.mark.parametrize(
    ("source", "fails", "saying"),
    [
        (SLEEPS_OUT_THE_DEADLINE, "completed_with_result", "after the query had ended, not when it ended"),
        (GIVES_UP_A_SECOND_LATE, "gave_up_promptly", "after its deadline of 5 ms had passed, not at once"),
        (GIVES_UP_50MS_LATE, "gave_up_promptly", "after its deadline of 5 ms had passed, not at once"),
        (LINGERS_WHEN_CANCELLED, "gave_up_promptly", "after its client had cancelled it, not at once"),
    ],
    ids=["sleeps_out_the_deadline", "a_second_late", "50ms_late", "lingers_when_cancelled"],
)
def test_a_handler_that_ends_late_fails_only_the_property_it_is_late_for(source, fails, saying):
    """Late is a state: the handler is still running once a timer set after the moment it should have ended
    (its query's end, its deadline, its cancellation) has fired and the loop has turned 50 more times. Each
    test's message shows the problems of its own property, and only those."""
    run = _isolated(source)
    assert run.error is None and run.leftover_tasks == 0
    run.require(*(name for name in GRADED if name != fails))
    with pytest.raises(AssertionError) as failed:
        run.require(fails)
    lines = str(failed.value).splitlines()
    label = fails.replace("_", " ")
    assert lines[0].startswith(f"{label}: ") and len(lines) == 4  # the count, then three of its requests
    assert all(line.startswith(f"{label}: request ") and saying in line for line in lines[1:])


def test_a_handler_that_ends_on_time_is_never_late():
    """The direct fix and the article's fix, on both kinds of traffic: no request is judged late."""
    for source in (DIRECT, BUFFERED):
        for options in ({}, {"traffic": "generated", "requests": 90}):
            run = run_isolated(source, scenario="forgotten_cancel", function="handle_request", **options)
            run.require(*GRADED)
            assert not any("not at once" in p or "not when it ended" in p for p in run.outcome["problems"])


def test_a_child_that_reads_the_graders_witness_of_the_client_is_tampering():
    """The client's signals live in the scenario's witness of each request, the grader's record: an answer's
    code that asks `witness()` for it (a child that quits once the client has gone) ends its run as tampered."""
    run = _isolated(WATCHES_THE_CLIENT)
    assert run.reason is Reason.TAMPERED and "forgotten_cancel.witness" in (run.error or "")


def test_a_cell_that_names_itself_leaklab_does_not_pass_for_leaklabs_own_code():
    """leaklab's own code is told by what a frame runs (a loaded leaklab module's globals and code from its
    file), not by the `__name__` a cell can set."""
    run = _isolated(NAMES_ITSELF_LEAKLAB)
    assert run.reason is Reason.TAMPERED and "forgotten_cancel.witness" in (run.error or "")


def test_a_deadline_raised_as_a_subclass_of_timeout_error_is_a_timeout_error():
    """`class DeadlineExceeded(TimeoutError)` is caught by every `except TimeoutError`: the task's TimeoutError."""
    run = _isolated(DEADLINE_EXCEEDED)
    assert run.error is None and run.leftover_tasks == 0
    run.require(*GRADED)
