"""Grade learners' notebooks against the authored sources' visible and hidden tests.

Each notebook's tests run twice, as the class grader (`_batch`) runs them: by the grader itself, outside
the learner's kernel (`_verify`), and in a kernel that runs the notebook with its test cells restored from
the source, as nbgrader's autograde runs it; a test scores only if both pass it. Without feedback pages,
the kernel's run is made here with nbclient (nbgrader's own machinery costs seconds a call); with them,
it is nbgrader's autograde in a throwaway course, whose pages are nbgrader's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ._errors import LeaklabError
from ._recording import artefacts_dir

# How a submission's kernel runs: in nbgrader's autograde (grader/nbgrader_config.py sets these on
# `c.Execute`) and in `grade`'s own run of the notebook.
KERNEL_RUN: dict[str, object] = {
    # A cell that runs longer than this is interrupted and the notebook goes on; every leaklab cell takes
    # well under a second, a test cell at most two isolated runs of 25 s each.
    "timeout": 60,
    # An answer that blocks the kernel's event loop leaves the kernel slow to answer after the interrupt:
    # a late output is a failed cell, not a reason to give up on the whole notebook.
    "raise_on_iopub_timeout": False,
    # Submissions may leave threads behind on purpose (that is the lesson): don't wait politely for them.
    "shutdown_kernel": "immediate",
    # Minimal tracebacks: an assertion's message reaches the learner, the hidden test's code does not.
    "extra_arguments": ["--InteractiveShell.xmode=Minimal"],
}


def before_first_test(action: Callable[[], None]) -> Callable[..., Awaitable[None]]:
    """An nbclient `on_cell_execute` hook that runs `action` once, just before the first test cell.

    The graders publish their own measurements there (`_isolation.publish_runs`): the kernel's tests
    show them instead of measuring again, and no cell before the tests, where the learner's code runs,
    can ever see them, however quick either side was.
    """
    done: list[bool] = []

    async def hook(cell: dict, cell_index: int) -> None:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not done and meta.get("grade") and not meta.get("solution"):
            done.append(True)
            await asyncio.to_thread(action)

    return hook


@dataclass
class TestScore:
    """One graded test cell."""

    score: float
    max_score: float
    message: str = ""  # why it failed: the assertion's own message, never the test's code


@dataclass
class NotebookGrade:
    """The grade of one submitted notebook, or the error that kept it from being graded."""

    notebook: str
    assignment: str | None = None
    score: float = 0.0
    max_score: float = 0.0
    tests: dict[str, TestScore] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict:
        """The `--json` shape: scores per test, no messages."""
        tests = {name: {"score": t.score, "max_score": t.max_score} for name, t in self.tests.items()}
        return {
            "notebook": self.notebook,
            "assignment": self.assignment,
            "score": self.score,
            "max_score": self.max_score,
            "tests": tests,
            "error": self.error,
        }


def find_course_root(start: Path | None = None) -> Path:
    """The leaklab checkout: the nearest folder above `start` with `notebooks/` and `grader/`, else the
    checkout this package was installed from (an instructor's course folder lies elsewhere)."""
    here = (start or Path.cwd()).resolve()
    installed_from = Path(__file__).resolve().parents[2]  # `make` installs the package from the checkout
    for folder in (here, *here.parents, installed_from):
        if (folder / "notebooks").is_dir() and (folder / "grader" / "nbgrader_config.py").is_file():
            return folder
    raise LeaklabError(
        f"no leaklab course found at or above {here}: run this inside the leaklab checkout, "
        "or pass --course pointing at it (the folder with notebooks/ and grader/)"
    )


def grade_ids(nb: dict, *, solutions_only: bool = False) -> set[str]:
    """The nbgrader grade ids a (validated) notebook's cells carry; with `solutions_only`, of answer cells."""
    ids = set()
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if (
            isinstance(meta, dict)
            and isinstance(meta.get("grade_id"), str)
            and (meta.get("solution") or not solutions_only)
        ):
            ids.add(meta["grade_id"])
    return ids


def lessons(course: Path) -> dict[str, Path]:
    """The authored lessons of a course, by slug (`01_forgotten_cancel`)."""
    return {path.stem: path for path in sorted((course / "notebooks").glob("[0-9][0-9]_*.ipynb"))}


def _read_notebook(path: Path) -> dict:
    """A notebook's JSON, checked against the notebook format; LeaklabError saying what is wrong."""
    import nbformat

    if not path.exists():
        raise LeaklabError(f"no such file: {path}")
    if path.is_dir():
        raise LeaklabError(f"{path} is a folder, not a notebook")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LeaklabError(f"{path} is not a notebook: it is not text") from None
    except OSError as exc:
        raise LeaklabError(f"{path} cannot be read: {exc.strerror}") from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LeaklabError(f"{path} is not a notebook: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(nb, dict) or "cells" not in nb or "nbformat" not in nb:
        raise LeaklabError(f"{path} is JSON but not a Jupyter notebook (no cells or nbformat)")
    if nb.get("nbformat") != 4:
        raise LeaklabError(f"{path} is in notebook format {nb.get('nbformat')}: save it with Jupyter 4 or newer")
    if not _looks_valid(nb):  # the full schema check costs a third of a second: only to say what is wrong
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError as exc:
            raise LeaklabError(f"{path} is not a valid notebook: {exc.message}") from None
    return nb


def _looks_valid(nb: dict) -> bool:
    """The parts of the notebook format that grading relies on."""
    return isinstance(nb["cells"], list) and all(
        isinstance(cell, dict)
        and cell.get("cell_type") in ("code", "markdown", "raw")
        and isinstance(cell.get("source"), str | list)
        and isinstance(cell.get("metadata"), dict)
        and isinstance(cell["metadata"].get("nbgrader", {}), dict)
        for cell in nb["cells"]
    )


def _read_submission(path: Path, known: dict[str, Path]) -> str:
    """The lesson a submission belongs to; LeaklabError with a clear reason if it cannot be graded."""
    nb = _read_notebook(path)
    mine = grade_ids(nb)
    for slug, source_path in known.items():
        source = json.loads(source_path.read_text(encoding="utf-8"))
        if not (mine & grade_ids(source) or (path.stem == slug and not mine)):
            continue
        missing = grade_ids(source, solutions_only=True) - mine
        if missing:
            raise LeaklabError(f"{path} has no answer cell {', '.join(sorted(missing))}: was it deleted?")
        return slug
    raise LeaklabError(
        f"{path} belongs to no known exercise: none of its cells carries a grade id of "
        f"{', '.join(known) or 'any lesson'}"
    )


class TempCourse:
    """A throwaway nbgrader course directory configured like the instructor's (or, with `root`, the
    instructor's own course directory, configured by its `nbgrader_config.py`)."""

    def __init__(
        self,
        course: Path,
        *,
        root: Path | None = None,
        cell_timeout_s: float | None = None,
    ) -> None:
        from nbgrader.apps import NbGraderAPI
        from sqlalchemy.exc import SAWarning
        from traitlets.config import Config, PyFileConfigLoader

        # nbgrader 0.9 on SQLAlchemy 2 warns about its own session use on every grade: noise, not news.
        warnings.filterwarnings("ignore", category=SAWarning)

        _put_interpreter_on_path()
        self.root = root or Path(tempfile.mkdtemp(prefix="course-", dir=artefacts_dir("grading")))
        config = Config()
        self.config_file = course / "grader" / "nbgrader_config.py"
        own = self.root / "nbgrader_config.py"
        for file in (self.config_file, own) if root and own.exists() else (self.config_file,):
            config.merge(PyFileConfigLoader(file.name, path=str(file.parent)).load_config())
        config.CourseDirectory.root = str(self.root)
        if cell_timeout_s is not None:
            config.Execute.timeout = cell_timeout_s
        self.api = NbGraderAPI(config=config)
        self.db_url = f"sqlite:///{self.root / 'gradebook.db'}"

    def hook_tests(self, action: Callable[[], None]) -> None:
        """Run `action` just before the first test cell of the next notebooks this course autogrades."""
        self.api.config.Execute.on_cell_execute = before_first_test(action)

    def generate(self, slug: str, source: Path) -> Path:
        """Generate the student version of a lesson; returns the released notebook."""
        folder = self.root / "source" / slug
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / f"{slug}.ipynb")
        self._check(self.api.generate_assignment(slug), f"nbgrader could not generate {slug}")
        return self.root / "release" / slug / f"{slug}.ipynb"

    def generate_cached(self, slug: str, source: Path) -> None:
        """`generate` into this course's empty gradebook, reusing an earlier run's result when the
        lesson and the nbgrader configuration are unchanged (it costs nbgrader about two seconds)."""
        from nbgrader import __version__ as nbgrader_version

        key = hashlib.sha256(source.read_bytes() + self.config_file.read_bytes() + nbgrader_version.encode())
        cached = artefacts_dir("grading") / f"generated-{slug}-{key.hexdigest()[:16]}"
        if not (cached / "gradebook.db").exists():
            self.generate(slug, source)
            staging = Path(tempfile.mkdtemp(prefix="staging-", dir=cached.parent))
            shutil.copyfile(self.root / "gradebook.db", staging / "gradebook.db")
            shutil.copytree(self.root / "source", staging / "source")
            try:
                staging.rename(cached)  # atomic: a concurrent grader sees all of it or none
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)  # another grader cached it first
            return
        shutil.copyfile(cached / "gradebook.db", self.root / "gradebook.db")
        shutil.copytree(cached / "source", self.root / "source", dirs_exist_ok=True)

    def autograde(self, slug: str, student: str, submission: Path) -> dict[str, TestScore]:
        """Autograde one submission; returns its scores by grade id."""
        folder = self.root / "submitted" / student / slug
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(submission, folder / f"{slug}.ipynb")
        self._check(self.api.autograde(slug, student), "nbgrader could not grade it")
        from nbgrader.api import Gradebook

        with Gradebook(self.db_url) as gradebook:
            notebook = gradebook.find_submission_notebook(slug, slug, student)
            scores = {g.name: TestScore(float(g.score), float(g.max_score)) for g in notebook.grades}
        graded = self.root / "autograded" / student / slug / f"{slug}.ipynb"
        for name, message in _failure_messages(graded).items():
            if name in scores:
                scores[name].message = message
        return scores

    def feedback(self, slug: str, student: str, destination: Path) -> None:
        """Write nbgrader's feedback HTML for a graded submission (hidden tests cleared by the config)."""
        self._check(self.api.generate_feedback(slug, student), "nbgrader could not write feedback")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / "feedback" / student / slug / f"{slug}.html", destination)

    def remove(self) -> None:
        """Delete the course directory."""
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _check(result: dict, what: str) -> None:
        if not result.get("success"):
            raise LeaklabError(f"{what}: {_cause(result.get('log', '') + chr(10) + result.get('error', ''))}")


# nbgrader's errors that a submission can cause, in words an instructor can act on.
_KNOWN_CAUSES = {
    "DeadKernelError": "the kernel died while running it (an answer that ends the process, or runs out of memory)",
    "CellTimeoutError": "a cell ran past the per-cell timeout of grader/nbgrader_config.py",
}


# Errors nbgrader writes into a cell without a message of their own.
_CELL_ERRORS = {"CellTimeoutError": "the cell ran past the per-cell timeout (does the answer block the event loop?)"}


def _cause(log: str) -> str:
    """The most telling line of nbgrader's log: the last exception other than its own summary."""
    for name, words in _KNOWN_CAUSES.items():
        if name in log:
            return words
    lines = [line.strip() for line in log.splitlines() if re.search(r"\w+(Error|Exception): ", line)]
    lines = [line for line in lines if "NbGraderException" not in line]
    return lines[-1] if lines else (log.strip().splitlines() or ["no detail from nbgrader"])[-1]


def _unused_name(path: Path, written: set[Path]) -> Path:
    """`path`, or `path` with `-2`, `-3`... when submissions of this call share a file name."""
    candidate, n = path, 1
    while candidate in written:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    written.add(candidate)
    return candidate


def _put_interpreter_on_path() -> None:
    """nbgrader runs `alembic` by name: find it beside this interpreter even in a venv never activated."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def _failure_messages(graded: Path) -> dict[str, str]:
    """The error each graded test cell ended with, as `Name: message` (the kernel prints no code)."""
    messages = {}
    if not graded.exists():
        return messages
    for cell in json.loads(graded.read_text(encoding="utf-8"))["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if meta.get("grade") and errors:
            name, value = errors[0].get("ename"), errors[0].get("evalue")
            messages[meta["grade_id"]] = f"{name}: {value or _CELL_ERRORS.get(name, 'no message')}"
    return messages


def grade(
    notebooks: list[Path],
    *,
    course: Path,
    feedback: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[NotebookGrade]:
    """Grade each notebook; one that cannot be graded gets an `error` and the others still are.

    With `feedback`, nbgrader's feedback HTML for each graded notebook is written into that folder.
    """
    known = lessons(course)
    results = [NotebookGrade(str(path)) for path in notebooks]
    accepted: list[tuple[NotebookGrade, Path, str]] = []
    for result, path in zip(results, notebooks, strict=True):
        try:
            result.assignment = _read_submission(path, known)
            accepted.append((result, path, result.assignment))
        except LeaklabError as exc:
            result.error = str(exc)
    courses: dict[str, TempCourse] = {}  # with feedback: one nbgrader course per lesson, its gradebook cached
    written: set[Path] = set()  # feedback pages written by this call: earlier runs' are overwritten
    try:
        for done, (result, path, slug) in enumerate(accepted, start=1):
            progress(f"[{done}/{len(accepted)}] grading {path} ({slug})")
            try:
                page = _unused_name(feedback / f"{path.stem}.html", written) if feedback is not None else None
                if page is not None and slug not in courses:
                    courses[slug] = TempCourse(course)
                    courses[slug].generate_cached(slug, known[slug])
                result.tests = _grade_one(known[slug], path, courses.get(slug), f"learner-{done:03d}", page)
                result.score = sum(t.score for t in result.tests.values())
                result.max_score = sum(t.max_score for t in result.tests.values())
            except LeaklabError as exc:
                result.error = str(exc)
    finally:
        for temp in courses.values():
            temp.remove()
    return results


def _grade_one(
    source_path: Path, path: Path, temp: TempCourse | None, student: str, page: Path | None
) -> dict[str, TestScore]:
    """One notebook's tests, run by the grader while a kernel runs the notebook; each scores the lower
    of the two. The kernel is nbgrader's (`temp`, writing the feedback `page`) or one run here."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from ._isolation import VERDICTS_ENV, publish_runs
    from ._verify import verify

    source = json.loads(source_path.read_text(encoding="utf-8"))
    submitted = _read_notebook(path)
    with tempfile.TemporaryDirectory(prefix="leaklab-grade-") as folder, ThreadPoolExecutor(1) as pool:
        verdicts_file, measured = Path(folder) / "verdicts.json", threading.Event()

        def own_run() -> dict:
            try:
                return verify(source, submitted)
            finally:
                measured.set()

        publish = partial(publish_runs, verdicts_file, after=measured)  # just before the kernel's first test
        os.environ[VERDICTS_ENV] = str(verdicts_file)
        try:
            own = pool.submit(own_run)
            if temp is not None:
                temp.hook_tests(publish)
                kernel = temp.autograde(source_path.stem, student, path)
                if page is not None:
                    temp.feedback(source_path.stem, student, page)
            else:
                kernel = _run_in_kernel(source, submitted, Path(folder), before_tests=publish)
            verdicts = own.result()
        finally:
            del os.environ[VERDICTS_ENV]
    scores = {}
    for grade_id, verdict in verdicts.items():
        theirs = kernel.get(grade_id)  # a test cell the learner deleted: the grader's own run alone
        in_kernel = theirs.score if theirs else verdict.score
        message = verdict.message or (theirs.message if theirs else "")
        scores[grade_id] = TestScore(min(verdict.score, in_kernel), verdict.max_score, message)
    return scores


def _run_in_kernel(
    source: dict, submitted: dict, folder: Path, *, before_tests: Callable[[], None]
) -> dict[str, TestScore]:
    """Run the submission as nbgrader's autograde would (its test and locked cells restored from the
    source, outputs cleared, errors allowed, `KERNEL_RUN`'s limits) and score its test cells: full points
    for a cell that ran without an error, none otherwise."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    authored = {}
    for cell in source["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade_id") and not meta.get("solution") and (meta.get("grade") or meta.get("locked")):
            authored[meta["grade_id"]] = cell
    nb = json.loads(json.dumps(submitted))
    for cell in nb["cells"]:
        original = authored.get(cell["metadata"].get("nbgrader", {}).get("grade_id"))
        if original is not None:
            cell.update(cell_type=original["cell_type"], source=original["source"], metadata=original["metadata"])
        if isinstance(cell["source"], list):  # as on disk; the executor wants a string
            cell["source"] = "".join(cell["source"])
        if cell["cell_type"] == "code":
            cell.update(outputs=[], execution_count=None)
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    failed: set[int] = set()
    client = NotebookClient(
        nbformat.from_dict(nb),
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "", "traceback": ["CellTimeoutError"]},
        on_cell_executed=lambda cell, cell_index, execute_reply: (
            failed.add(cell_index) if (execute_reply or {}).get("content", {}).get("status") == "error" else None
        ),
        on_cell_execute=before_first_test(before_tests),
        resources={"metadata": {"path": str(folder)}},
        **KERNEL_RUN,
    )
    try:
        executed = client.execute()
    except DeadKernelError:
        raise LeaklabError(_KNOWN_CAUSES["DeadKernelError"]) from None
    scores = {}
    for index, cell in enumerate(executed.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        points = float(meta.get("points", 0))
        if errors or index in failed:
            name = errors[0].get("ename") if errors else "Error"
            value = errors[0].get("evalue") if errors else ""
            message = f"{name}: {value or _CELL_ERRORS.get(name, 'no message')}"
            scores[meta["grade_id"]] = TestScore(0.0, points, message)
        else:
            scores[meta["grade_id"]] = TestScore(points, points)
    return scores
