"""What grading produces: a result per test, the reason a submission was not graded normally, and the
two pure decisions every front end shares (merging the two runs, and naming the reason).

A reason is data from the moment a limit or a failure is detected (an exception's type, a signal, a
kernel's death, a cell's error name) to the reason column of grades.csv: it is never read back out of
a message, so rewording a message cannot change a grade.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, fields
from enum import StrEnum


class Reason(StrEnum):
    """Why a submission was not graded normally, in the words grades.csv uses."""

    MISSING = "missing"
    UNREADABLE = "unreadable"
    WRONG_ASSIGNMENT = "wrong assignment"
    ANSWER_DELETED = "answer deleted"
    TAMPERED = "tampered"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory limit"
    PROCESS_LIMIT = "process limit"
    OUTPUT_LIMIT = "output limit"
    ANSWER_FAILED = "answer failed"  # the answer ended its run (an exit, an interrupt) before any test
    KERNEL_DIED = "kernel died"
    NOT_GRADED_BY_NBGRADER = "not graded by nbgrader"
    GRADER_CRASHED = "grader crashed"


# The limits a run can hit: after one of them failed every test, the kernel's run could not give back
# a point and would only hold the job up until the same limit.
LIMITS = (Reason.TIMEOUT, Reason.MEMORY_LIMIT, Reason.PROCESS_LIMIT, Reason.OUTPUT_LIMIT)
# When tests failed for several of these, the first in this order names the submission's reason.
PRECEDENCE = (Reason.TAMPERED, *LIMITS, Reason.ANSWER_FAILED)


def reason_of(exc: BaseException) -> Reason | None:
    """The limit an exception says the process ran into, where it was caught; None for anything else."""
    if isinstance(exc, MemoryError):
        return Reason.MEMORY_LIMIT
    if isinstance(exc, OSError) and exc.errno == errno.EAGAIN:  # fork() or clone() refused
        return Reason.PROCESS_LIMIT
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:  # the output's size limit
        return Reason.OUTPUT_LIMIT
    if isinstance(exc, RuntimeError) and exc.args == ("can't start new thread",):  # CPython's own words
        return Reason.PROCESS_LIMIT
    return None


@dataclass
class TestResult:
    """One graded test cell; after a merge, also what each run gave it."""

    __test__ = False  # not a pytest test class, despite its name

    score: float
    max_score: float
    message: str = ""  # why it failed: the assertion's own message, never the test's code
    reason: Reason | None = None  # set when a limit or an ended answer, not a wrong answer, failed it
    hidden: bool = False  # failed in the test's hidden part (the grader's own run only: the kernel has none)
    own: float | None = None  # the grader's own run's score (merged results only)
    kernel: float | None = None  # the kernel's score, or the own run's where the kernel did not run it

    def to_json(self) -> dict:
        return {
            "score": self.score,
            "max_score": self.max_score,
            "kernel": self.kernel,
            "own": self.own,
            "message": self.message,
            "reason": self.reason.value if self.reason else "",
            "hidden": self.hidden,
        }

    @classmethod
    def from_json(cls, data: dict) -> TestResult:
        """From `to_json`'s form (or an older ledger's, which had no reason)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["reason"] = Reason(values["reason"]) if values.get("reason") else None
        return cls(**values)


def merge(own: dict[str, TestResult], kernel: dict[str, TestResult]) -> tuple[dict[str, TestResult], list[str]]:
    """Each test scores the lower of the two runs; returns the merged results and the tests the kernel
    passed but the grader's own run did not (a sign of tampering in the kernel).

    The kernel's run can only take points away: a test it did not run (a cell the learner deleted, a
    kernel that died) is judged by the grader's own run alone. The message shown, and the reason with
    it, are the own run's where it failed, else the kernel's.
    """
    merged, overruled = {}, []
    for grade_id, mine in own.items():
        theirs = kernel.get(grade_id)
        in_kernel = theirs.score if theirs else mine.score
        if in_kernel > mine.score:
            overruled.append(grade_id)
        told = mine if mine.message or theirs is None else theirs
        merged[grade_id] = TestResult(
            min(mine.score, in_kernel), mine.max_score, told.message, told.reason, own=mine.score, kernel=in_kernel
        )
    return merged, overruled


def limit_failure(tests: dict[str, TestResult]) -> tuple[Reason | None, str]:
    """The reason, and its message, if a limit, an answer that ended early, or a run caught forging its
    measurement explains a lost test."""
    lost = [t for t in tests.values() if t.score < t.max_score and t.reason]
    for reason in PRECEDENCE:
        for test in lost:
            if test.reason is reason:
                return reason, test.message
    return None, ""


def decide_reason(
    tests: dict[str, TestResult],
    *,
    kernel_failure: tuple[Reason, str] | None = None,
    problems: dict[str, str] | None = None,
    overruled: list[str] | None = None,
) -> tuple[Reason | None, str]:
    """A graded submission's reason and detail: the kernel's failure first, else a limit that failed a
    test, else tampering (test cells changed, or a test the kernel passed that the grader's own run
    failed); a submission with a reason also names what was tampered with in its detail."""
    reason, detail = kernel_failure or limit_failure(tests)
    said = list((problems or {}).values())
    if overruled:
        said.insert(0, f"passed in its kernel but not in the grader's own run: {', '.join(overruled)}")
    if said and reason is None:
        return Reason.TAMPERED, "; ".join(said)
    if said:
        return reason, "; ".join([detail, *said])
    return reason, detail
