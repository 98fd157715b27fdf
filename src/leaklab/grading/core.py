"""One submission graded, the same way for `leaklab grade` and `leaklab autograde`.

Its tests run twice at the same time: by the grader itself, outside the learner's kernel (`own_run`),
and in a kernel that runs the notebook as nbgrader's autograde does (`kernel`, `nbgrader_course`),
whose test cells show the grader's measurements (`handoff`) instead of measuring again. A test scores
the lower of the two, and nothing if the learner changed its cell (`checks`); the reason a submission
was not graded normally is decided from data (`results.decide_reason`).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .._i18n import notebook_language, speaking
from . import handoff, isolation
from .checks import structure_problems
from .kernel import KernelRun
from .own_run import verify
from .results import LIMITS, Reason, TestResult, decide_reason, limit_failure, merge

# Runs the kernel's side: given the action that hands the grader's measurements over (to be run just
# before the first test cell), returns what the kernel gave.
KernelRunner = Callable[[Callable[[], None]], KernelRun]


@dataclass
class Lesson:
    """What grading a notebook needs of its lesson: the authored source (hidden tests and all) and the
    released student version its test cells must still match."""

    slug: str
    source: dict
    release: dict | None = None

    @classmethod
    def read(cls, slug: str, source: Path, release: Path | None = None) -> Lesson:
        released = json.loads(release.read_text(encoding="utf-8")) if release and release.exists() else None
        return cls(slug, json.loads(source.read_text(encoding="utf-8")), released)


@dataclass
class Graded:
    """A graded submission."""

    tests: dict[str, TestResult]
    reason: Reason | None = None
    detail: str = ""
    autograded: Path | None = None  # the notebook nbgrader's autograde wrote, where it ran

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests.values())

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests.values())


def futile(own: dict[str, TestResult]) -> bool:
    """Every test already failed on a limit: the kernel's run could not give a point back."""
    return all(t.score == 0 for t in own.values()) and limit_failure(own)[0] in LIMITS


def grade_submission(
    lesson: Lesson,
    submitted: dict,
    run_kernel: KernelRunner,
    *,
    stop_kernel: Callable[[], None] | None = None,
) -> Graded:
    """Grade one notebook: both runs, merged, its test cells checked. With `stop_kernel`, the kernel's
    run is stopped as soon as the grader's own run shows it futile (it would hold the job up until the
    same limit)."""
    with speaking(notebook_language(submitted)):  # its messages in the language its lesson is written in
        own, kernel = _both_runs(lesson.source, submitted, run_kernel, stop_kernel)
    tests, overruled = merge(own, kernel.tests)
    problems = structure_problems(lesson.release, submitted) if lesson.release is not None else {}
    reason, detail = decide_reason(tests, kernel_failure=kernel.failure, problems=problems, overruled=overruled)
    for grade_id, problem in problems.items():  # a test whose cell was tampered with scores nothing
        if grade_id in tests:
            tests[grade_id].score, tests[grade_id].message = 0.0, problem
    return Graded(tests, reason, detail, kernel.notebook)


def _both_runs(
    source: dict, submitted: dict, run_kernel: KernelRunner, stop_kernel: Callable[[], None] | None
) -> tuple[dict[str, TestResult], KernelRun]:
    measured, kernel_done = threading.Event(), threading.Event()
    verdicts: dict[str, dict] = {}  # each test as the grader's own run saw it, for the kernel's hidden parts

    def own_run() -> tuple[dict[str, TestResult], bool]:
        try:
            own = verify(source, submitted)
            # What the kernel's stand-in for each hidden part shows: only a failure of the hidden part itself,
            # so that a kernel passing a visible part the grader's own run failed still shows (tampering).
            verdicts.update({k: {"passed": not t.hidden, "message": t.message} for k, t in own.items()})
        finally:  # also when it fails: the kernel waits for it
            measured.set()
        stopped = stop_kernel is not None and futile(own)
        while stopped and not kernel_done.is_set():  # until the kernel's side gives up: a late kernel goes too
            stop_kernel()  # type: ignore[misc]
            kernel_done.wait(0.2)
        return own, stopped

    with tempfile.TemporaryDirectory(prefix="leaklab-handoff-") as folder, ThreadPoolExecutor(1) as pool:
        os.environ[handoff.ENV] = str(Path(folder) / "runs.json")  # the kernel reads it, never measures again
        os.environ[handoff.PLOTS_ENV] = "data"  # its figures drawn by the grader, where a page shows them
        publish = partial(
            handoff.publish, Path(folder) / "runs.json", isolation.measured_runs, lambda: verdicts, after=measured
        )
        try:
            own_future = pool.submit(own_run)
            try:
                kernel = run_kernel(publish)
            finally:
                kernel_done.set()
            own, stopped = own_future.result()
        finally:
            del os.environ[handoff.ENV], os.environ[handoff.PLOTS_ENV]
    return own, (KernelRun({}) if stopped else kernel)
