"""The grading core's pure decisions (`grading.results`): a reason from data, the merge of two runs,
and which reason a submission gets."""

from __future__ import annotations

import errno

import pytest

from leaklab.grading.results import Reason, TestResult, decide_reason, limit_failure, merge, reason_of

FULL, LOST = TestResult(2, 2), TestResult(0, 2, "AssertionError: 0 of 1 checks")


def lost(reason: Reason, message: str = "it ran into a limit") -> TestResult:
    return TestResult(0, 2, message, reason)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (MemoryError(), Reason.MEMORY_LIMIT),
        (BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"), Reason.PROCESS_LIMIT),
        (RuntimeError("can't start new thread"), Reason.PROCESS_LIMIT),
        (OSError(errno.EFBIG, "File too large"), Reason.OUTPUT_LIMIT),
        (RuntimeError("MemoryError: can't start new thread, File too large"), None),  # words are not data
        (ValueError("x"), None),
        (SystemExit(), None),
    ],
)
def test_a_limit_is_told_by_the_exceptions_type_not_its_words(exc, reason):
    assert reason_of(exc) is reason


def test_the_lower_score_wins_and_a_kernel_that_passed_what_the_grader_failed_is_named():
    own = {"a": FULL, "b": LOST, "c": FULL}
    kernel = {"a": TestResult(0, 2, "CellTimeoutError: late", Reason.TIMEOUT), "b": FULL}
    merged, overruled = merge(own, kernel)
    assert [merged[k].score for k in "abc"] == [0, 0, 2]
    assert overruled == ["b"]
    assert (merged["a"].message, merged["a"].reason) == ("CellTimeoutError: late", Reason.TIMEOUT)
    assert merged["b"].message == LOST.message and merged["b"].reason is None  # the own run's, where it failed
    assert (merged["c"].own, merged["c"].kernel) == (2, 2)  # not run by the kernel: the own run alone


def test_the_first_limit_in_precedence_names_the_reason():
    tests = {"a": lost(Reason.ANSWER_FAILED, "ended"), "b": lost(Reason.MEMORY_LIMIT, "memory"), "c": LOST}
    assert limit_failure(tests) == (Reason.MEMORY_LIMIT, "memory")
    assert limit_failure({"a": LOST, "b": FULL}) == (None, "")
    assert limit_failure({"a": TestResult(2, 2, "", Reason.TIMEOUT)}) == (None, "")  # a test it did not lose
    tests["d"] = lost(Reason.TAMPERED, "tampered: a run that hid its leftovers")  # a run caught forging
    assert limit_failure(tests) == (Reason.TAMPERED, "tampered: a run that hid its leftovers")


@pytest.mark.parametrize(
    ("tests", "kernel_failure", "problems", "overruled", "expected"),
    [
        ({"a": FULL}, None, {}, [], (None, "")),
        ({"a": LOST}, None, {}, [], (None, "")),  # a wrong answer has no reason
        ({"a": lost(Reason.TIMEOUT, "t")}, None, {}, [], (Reason.TIMEOUT, "t")),
        ({"a": lost(Reason.TIMEOUT)}, (Reason.KERNEL_DIED, "died"), {}, [], (Reason.KERNEL_DIED, "died")),
        ({"a": FULL}, None, {"a": "test cell a edited"}, [], (Reason.TAMPERED, "test cell a edited")),
        (
            {"a": LOST},
            None,
            {},
            ["a"],
            (Reason.TAMPERED, "passed in its kernel but not in the grader's own run: a"),
        ),
        (
            {"a": lost(Reason.TIMEOUT, "t")},
            None,
            {"b": "test cell b moved"},
            [],
            (Reason.TIMEOUT, "t; test cell b moved"),
        ),
    ],
    ids=["normal", "wrong", "limit", "kernel_first", "edited", "overruled", "limit_and_tampering"],
)
def test_the_reason_of_a_graded_submission(tests, kernel_failure, problems, overruled, expected):
    assert decide_reason(tests, kernel_failure=kernel_failure, problems=problems, overruled=overruled) == expected


def test_a_test_result_survives_the_ledger_and_reads_an_older_line():
    result = TestResult(0, 2, "m", Reason.TIMEOUT, own=0, kernel=2)
    assert TestResult.from_json(result.to_json()) == result
    older = {"score": 2, "max_score": 2, "kernel": 2, "own": 2, "message": ""}
    assert TestResult.from_json(older) == TestResult(2, 2, "", None, own=2, kernel=2)
