"""`leaklab grade`: a learner's (or a few) notebooks graded in this process, against the checkout's
lessons. Without feedback pages the kernel's run is made here with nbclient; with them, it is nbgrader's
autograde in a throwaway course, whose pages are nbgrader's."""

from __future__ import annotations

import contextlib
import json
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import LeaklabError
from .._repo import lessons, release_of
from . import sandbox
from .checks import lesson_of, missing_answers, read_notebook
from .core import Lesson, grade_submission
from .kernel import KernelRun, run_notebook
from .nbgrader_course import NbgraderCourse, temporary_course
from .results import Reason, TestResult

# A kernel's failure that leaves a notebook ungraded here, said as an error. A kernel that died is not one:
# its tests score what the grader's own run gave them, with the reason, as the class grader records them
# (whether a kernel the answer broke dies or goes silent can depend on the machine's load; the grade must not).
_NOT_GRADED = (Reason.NOT_GRADED_BY_NBGRADER,)


@dataclass
class NotebookGrade:
    """The grade of one notebook on the command line, or the error that kept it from being graded."""

    notebook: str
    assignment: str | None = None
    score: float = 0.0
    max_score: float = 0.0
    tests: dict[str, TestResult] = field(default_factory=dict)
    reason: Reason | None = None
    detail: str = ""
    error: str | None = None

    def to_json(self) -> dict:
        """The `--json` shape: per test its score and, for a failed test, what the table shows of why."""
        tests = {
            name: {"score": t.score, "max_score": t.max_score, "message": t.message} for name, t in self.tests.items()
        }
        return {
            "notebook": self.notebook,
            "assignment": self.assignment,
            "score": self.score,
            "max_score": self.max_score,
            "tests": tests,
            "reason": self.reason.value if self.reason else None,
            "detail": self.detail,
            "error": self.error,
        }


def grade(
    notebooks: list[Path],
    *,
    checkout: Path,
    feedback: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[NotebookGrade]:
    """Grade each notebook; one that cannot be graded gets an `error` and the others still are.

    With `feedback`, nbgrader's feedback HTML for each graded notebook is written into that folder.
    """
    why = sandbox.unavailable()
    if why:
        progress(f"note: grading without a sandbox ({why}): the notebooks' code runs as you")
    else:
        sandbox.activate()
    known = lessons(checkout)
    sources = {slug: json.loads(path.read_text(encoding="utf-8")) for slug, path in known.items()}
    results = [NotebookGrade(str(path)) for path in notebooks]
    accepted: list[tuple[NotebookGrade, Path, dict]] = []
    for result, path in zip(results, notebooks, strict=True):
        try:
            submitted = read_notebook(path)
            result.assignment = lesson_of(path, submitted, sources)
            missing = missing_answers(submitted, sources[result.assignment])
            if missing:
                raise LeaklabError(f"{path} has no answer cell {', '.join(missing)}: was it deleted?")
            accepted.append((result, path, submitted))
        except LeaklabError as exc:
            result.error = str(exc)
    written: set[Path] = set()  # feedback pages written by this call: earlier runs' are overwritten
    with contextlib.ExitStack() as stack:
        courses: dict[str, NbgraderCourse] = {}  # with feedback: one nbgrader course per lesson
        for done, (result, path, submitted) in enumerate(accepted, start=1):
            slug = result.assignment or ""
            progress(f"[{done}/{len(accepted)}] grading {path} ({slug})")
            lesson = Lesson(slug, sources[slug], _read_release(checkout, slug))
            try:
                if feedback is None:
                    runner = _nbclient_runner(lesson, submitted)
                else:
                    if slug not in courses:
                        courses[slug] = stack.enter_context(temporary_course(checkout))
                        courses[slug].generate_for_kernel(slug, known[slug])
                    page = _unused_name(feedback / f"{path.stem}.html", written)
                    runner = _nbgrader_runner(courses[slug], lesson, f"learner-{done:03d}", path, page)
                graded = grade_submission(lesson, submitted, runner)
            except LeaklabError as exc:
                result.error = str(exc)
                continue
            except Exception as exc:  # a grader bug one submission ran into: the others are still graded
                progress("".join(traceback.format_exception(exc)).rstrip())
                result.error = f"{Reason.GRADER_CRASHED.value} on it ({type(exc).__name__}: {exc}); see stderr"
                continue
            if graded.reason in _NOT_GRADED:
                result.error = graded.detail
                continue
            result.tests, result.reason, result.detail = graded.tests, graded.reason, graded.detail
            result.score, result.max_score = graded.score, graded.max_score
    return results


def _read_release(checkout: Path, slug: str) -> dict | None:
    path = release_of(checkout, slug)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _nbclient_runner(lesson: Lesson, submitted: dict) -> Callable[[Callable[[], None]], KernelRun]:
    def run(before_tests: Callable[[], None]) -> KernelRun:
        with tempfile.TemporaryDirectory(prefix="leaklab-grade-") as folder:
            return run_notebook(lesson.source, submitted, Path(folder), before_tests=before_tests)

    return run


def _nbgrader_runner(
    course: NbgraderCourse, lesson: Lesson, student: str, path: Path, page: Path
) -> Callable[[Callable[[], None]], KernelRun]:
    def run(before_tests: Callable[[], None]) -> KernelRun:
        course.hook_tests(before_tests, lesson.source)
        kernel = course.autograde(lesson.slug, student, path)
        if kernel.failure is None:
            course.feedback(lesson.slug, student, page)
        return kernel

    return run


def _unused_name(path: Path, written: set[Path]) -> Path:
    """`path`, or `path` with `-2`, `-3`... when submissions of this call share a file name."""
    candidate, n = path, 1
    while candidate in written:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    written.add(candidate)
    return candidate
