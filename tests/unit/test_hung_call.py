from __future__ import annotations

import asyncio
import socket

import pytest
from answers_03 import (
    CLOSES_FROM_THE_LOOP,
    CLOSES_ON_TIMEOUT_ONLY,
    CLOSES_UNLESS_IT_FAILS,
    CONNECTS_OUTSIDE_THE_DEADLINE,
    DEADLINE_EXCEEDED,
    FIXED,
    FIXED_TIMEOUT,
    GIVES_UP_AT_ONCE,
    GUESSES_BY_THE_SECRET,
    GUESSES_WHICH_HANG,
    LEAKY,
    LETS_GO_UNCLOSED,
    MADE_UP,
    MAKES_UP_AFTER_ONE_BYTE,
    RETRIES_A_HUNG_CALL,
    SHORT_DEADLINES_ONLY,
    SOCKET_TIMEOUT,
    STUB,
    SWALLOWS_RESET,
    THREAD_CLOSES_ON_CANCEL,
    TIMER_LEFT,
    TIMES_OUT_BUT_KEEPS_SOCKET,
    WAIT_FOR_THREAD,
    WATCHDOG_TASK_LEFT,
)
from outcomes import checks_ran

from leaklab import run_isolated
from leaklab.grading.results import Reason
from leaklab.scenarios.hung_call import (
    PAYLOAD_BYTES,
    Request,
    burst,
    dependency,
    leaky_fetch,
    open_sockets,
    send_calls,
)

PROPERTIES = ("stuck_calls_time_out", "healthy_calls_answered", "errors_pass_through", "cancelled_calls_close_at_once")
ENDINGS = PROPERTIES[:3]  # how the calls ended, as against what they left open


# The hidden tests' traffic, drawn by Hypothesis for each answer (`traffic="generated"`), besides the planned burst.
TRAFFIC = {"planned": {}, "drawn": {"traffic": "generated", "calls": 45}}


def run(source: str, **options):
    return run_isolated(source, scenario="hung_call", function="fetch", **options)


def test_the_service_answers_some_keys_and_holds_the_others_open():
    async def main():
        with dependency() as address:
            before = open_sockets()
            calls = await send_calls(leaky_fetch, address, 6, patience_ms=100)
            return calls, before

    calls, _ = asyncio.run(main())
    answered = {c.request.key: c.answer for c in calls if c.ended_with == "answer"}
    assert answered == {
        "key-0": "value of key-0",
        "key-1": "value of key-1",
        "key-3": "value of key-3",
        "key-4": "value of key-4",
    }
    assert {c.request.key for c in calls if c.ended_with == "nothing"} == {"stuck-2", "stuck-5"}


def test_a_request_knows_its_line_and_answer():
    request = Request("abc")
    assert request.line() == b"GET abc\n" and request.expected() == "value of abc"


def test_a_call_the_service_resets_must_leave_nothing_either():
    """The planned burst and the drawn one both have calls that end in an error (the service resets the
    connection): a fetch that closes only on an answer or a timeout leaves a socket per reset call."""
    planned, drawn = run(CLOSES_UNLESS_IT_FAILS), run(CLOSES_UNLESS_IT_FAILS, **TRAFFIC["drawn"])
    assert planned.error is None and drawn.error is None
    assert (planned.leftover_files, planned.leftover_threads) == (5, 0)  # 30 calls: the fifth of every six resets
    assert drawn.leftover_files >= 5 and all(drawn.outcome[name][0] == drawn.outcome[name][1] for name in ENDINGS)


def test_the_lessons_burst_shows_each_half_fix():
    """The notebook's burst ends calls every way the task names, so each half-fix leaves sockets in it."""

    def fetch_of(source: str):
        namespace = {"asyncio": asyncio, "socket": socket, "Request": Request, "PAYLOAD_BYTES": PAYLOAD_BYTES}
        exec(source, namespace)
        return namespace["fetch"]

    async def main():
        return {name: await burst(fetch_of(source), 24) for name, source in HALF_FIXES.items()}

    def hung(name: str, *, cancelled: bool | None = None) -> int:
        """The hung calls of a burst that reached the service, and (`cancelled`) were cancelled mid-call or
        not: a caller cancels once the service has the request, unless the call has ended by itself first
        (a loaded machine may start it so late that its own deadline comes first)."""
        calls = [c for c in ended[name].calls if c.stuck and c.request.key in ended[name].asked]
        mid_call = [c.cancelled and c.ended_with == "CancelledError" for c in calls]
        return sum(cancelled in (None, was) for was in mid_call)

    ended = asyncio.run(main())
    assert ended["fixed"].sockets_left == ended["socket_timeout"].sockets_left == 0  # a thread runs to its deadline
    assert sum(c.stuck for c in ended["keeps_socket"].calls) == 8 and hung("keeps_socket", cancelled=True) >= 1
    assert ended["closes_on_timeout_only"].sockets_left == hung("closes_on_timeout_only", cancelled=True)  # 4 in 24
    assert ended["keeps_socket"].sockets_left == hung("keeps_socket")  # 8: the hung ones, cancelled early or not
    assert ended["closes_unless_it_fails"].sockets_left == ended["closes_unless_it_fails"].sockets_collected == 4
    assert "4 of 4 raised TimeoutError on time" in str(ended["fixed"])


HALF_FIXES = {
    "fixed": FIXED,
    "socket_timeout": SOCKET_TIMEOUT,
    "closes_on_timeout_only": CLOSES_ON_TIMEOUT_ONLY,
    "keeps_socket": TIMES_OUT_BUT_KEEPS_SOCKET,
    "closes_unless_it_fails": CLOSES_UNLESS_IT_FAILS,
}


# What an answer may fail besides, by chance of timing (never what a right answer would lose).
# Its threads that hang fill the default executor for good: how many cancelled calls got a thread, and how
# many of the later calls that hang ever asked the service before their caller gave up (fewer than half:
# "TimeoutError, without asking the service"), depends on how soon it fills.
MAY_ALSO_FAIL = {WAIT_FOR_THREAD: {"cancelled_calls_close_at_once", "stuck_calls_time_out"}}


@pytest.mark.parametrize(
    ("source", "failing", "leaves"),
    [
        (FIXED, set(), False),
        (THREAD_CLOSES_ON_CANCEL, set(), False),
        (DEADLINE_EXCEEDED, set(), False),  # its own subclass of TimeoutError is a TimeoutError
        # its thread holds the socket past the cancelled call's end, until the socket's timeout
        (SOCKET_TIMEOUT, {"cancelled_calls_close_at_once"}, False),
        (LEAKY, {"stuck_calls_time_out", "cancelled_calls_close_at_once"}, True),
        # both connect outside their deadline: the calls to the service's door hang in connect for good
        (TIMES_OUT_BUT_KEEPS_SOCKET, {"stuck_calls_time_out", "cancelled_calls_close_at_once"}, True),
        (CLOSES_ON_TIMEOUT_ONLY, {"stuck_calls_time_out", "cancelled_calls_close_at_once"}, True),
        # the descriptor closed from the loop while a thread still waits in recv: the connection stays open
        (CLOSES_FROM_THE_LOOP, {"cancelled_calls_close_at_once"}, False),
        (CONNECTS_OUTSIDE_THE_DEADLINE, {"stuck_calls_time_out"}, False),
        (RETRIES_A_HUNG_CALL, {"stuck_calls_time_out"}, False),  # the service counts the asks
        # its threads that hang fill the default executor for good: how many cancelled calls got a thread (and
        # hold a socket past their end) depends on how soon it fills; the drawn burst's may have none
        (WAIT_FOR_THREAD, {"healthy_calls_answered", "errors_pass_through"}, True),
        (GIVES_UP_AT_ONCE, set(ENDINGS), False),  # its TimeoutError comes before the deadline
        (SWALLOWS_RESET, {"errors_pass_through"}, False),
        (STUB, set(ENDINGS), False),
        (MADE_UP, set(ENDINGS), False),  # the grader's keys do not say which hang; the service says what it answered
        (GUESSES_BY_THE_SECRET, {"stuck_calls_time_out"}, False),  # the service counts the asks
    ],
    ids=[
        "fixed",
        "thread_closes_on_cancel",
        "deadline_exceeded",
        "socket_timeout",
        "leaky",
        "keeps_socket",
        "closes_on_timeout_only",
        "closes_from_the_loop",
        "connects_outside_the_deadline",
        "retries_a_hung_call",
        "wait_for_thread",
        "gives_up",
        "swallows_reset",
        "stub",
        "made_up",
        "guesses_by_the_secret",
    ],
)
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_each_answer_fails_exactly_what_it_breaks(source, failing, leaves, traffic):
    result = run(source, **TRAFFIC[traffic])
    assert result.error is None
    failed = {name for name in PROPERTIES if result.outcome[name][0] < result.outcome[name][1]}
    assert failed - MAY_ALSO_FAIL.get(source, set()) == failing
    checks_ran(result)
    assert bool(result.leftover_tasks or result.leftover_threads or result.leftover_files) == leaves
    assert not result.outcome["outlived_their_call"]  # none starts a task or thread that outlives its call


def test_an_answer_made_up_after_the_first_byte_of_a_reply_is_not_the_services():
    """A grader's key is answered with a token only the service knows: a fetch that reads one byte and
    returns `request.expected()` answers the lesson's keys right and the grader's wrong."""
    for traffic in TRAFFIC.values():
        result = run(MAKES_UP_AFTER_ONE_BYTE, **traffic)
        assert result.error is None and result.outcome["healthy_calls_answered"][0] == 0


def test_asking_the_grader_which_calls_hang_is_tampering():
    """`never_answered` is the grader's truth (`_truth.graders_truth`): a call of it from the answer ends the
    run as tampered. Its rule written out (`GUESSES_BY_THE_SECRET`) is caught by the service's count."""
    result = run(GUESSES_WHICH_HANG)
    assert result.reason is Reason.TAMPERED and "hung_call.never_answered" in result.error


def test_leftovers_are_counted_by_kind():
    assert run(TIMES_OUT_BUT_KEEPS_SOCKET).leftover_files == 10  # one socket per stuck call
    # one per call its caller cancelled mid-call (of 5: a loaded machine may let one time out by itself first)
    closes_on_timeout = run(CLOSES_ON_TIMEOUT_ONLY)
    closed, cancelled = closes_on_timeout.outcome["cancelled_calls_close_at_once"]
    assert closes_on_timeout.leftover_files == cancelled - closed >= 1 and cancelled == 5
    assert run(WAIT_FOR_THREAD).leftover_threads >= 1
    with pytest.raises(AssertionError, match="10 sockets or files were left open"):
        run(TIMES_OUT_BUT_KEEPS_SOCKET).require_no_leftovers()


def test_a_connection_closed_only_by_its_finaliser_is_left_open():
    """Nothing is open when the calls are over, but only because the finaliser closed each connection the
    answer let go (ResourceWarning: unclosed ...): the lesson's wrong way, counted from the warnings."""
    result = run(LETS_GO_UNCLOSED)
    assert result.error is None and result.leftover_files == 0 and result.closed_by_finaliser > 0
    with pytest.raises(AssertionError, match="their finaliser closed them"):
        result.require_no_leftovers()
    assert run(FIXED).closed_by_finaliser == 0


@pytest.mark.parametrize("source", [WATCHDOG_TASK_LEFT, TIMER_LEFT], ids=["watchdog_task", "timer_thread"])
def test_a_watchdog_left_running_after_its_call_has_ended_is_left_behind(source):
    """Every call ends right, and nothing is left once the last deadline has passed, but each answered call
    left the task or thread it started to enforce its deadline running until that deadline: "nothing it
    opened stays open once it has ended". The right answers, threads and tasks of their own included, leave
    nothing running (`test_each_answer_fails_exactly_what_it_breaks`)."""
    for traffic in TRAFFIC.values():
        result = run(source, **traffic)
        assert result.error is None and not result.outcome["problems"]
        assert result.outcome["outlived_their_call"]
        with pytest.raises(AssertionError, match="calls left what they started running"):
            result.require_no_leftovers()
    assert not run(THREAD_CLOSES_ON_CANCEL).outcome["outlived_their_call"]


def test_a_drawn_burst_has_a_call_that_hangs_past_a_long_deadline():
    """The drawn burst has one call that hangs with a deadline of 1-3 s: a fetch that enforces only short
    deadlines is still waiting in it when its caller gives up."""
    result = run(SHORT_DEADLINES_ONLY, **TRAFFIC["drawn"])
    timed_out, stuck = result.outcome["stuck_calls_time_out"]
    assert result.error is None and timed_out < stuck
    assert any("ended with nothing" in problem for problem in result.outcome["problems"])


@pytest.mark.parametrize("traffic", TRAFFIC)
def test_a_timeout_of_its_own_gives_up_before_a_longer_deadline(traffic):
    """The calls that hang have deadlines of 20-400 ms, in the planned burst and the drawn one: a fixed 100 ms
    raises TimeoutError before the longer ones have passed, counted from when fetch was called (load only
    makes that later), whether its caller waits for the deadline or cancels the call at half of it. Its
    healthy calls may time out too, on a loaded machine: not asserted."""
    result = run(FIXED_TIMEOUT, **TRAFFIC[traffic])
    assert result.error is None
    assert any(
        result.outcome[name][0] < result.outcome[name][1] for name in ("stuck_calls_time_out", "errors_pass_through")
    )
    assert any("(deadline " in problem for problem in result.outcome["problems"])
