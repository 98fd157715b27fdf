"""Grade a whole class: every submitted notebook of an nbgrader course, in parallel, resumably, and so
that no submission can break the grading of another.

Each submission is graded in a process of its own, forked from this one (nbgrader already imported),
in a session of its own, under limits on memory, processes and time. Inside it, the lesson's tests run
twice at the same time: by the grader itself, outside the learner's kernel (`_verify`), and by
nbgrader's autograde in the kernel, whose tests show the grader's measurements (handed over just before
its first test cell, so that no cell before it sees them) instead of measuring again. A test scores only
if both runs pass it, and if the learner left its cell as released. The kernel of an answer whose own
run already failed every test on a limit (time, memory, processes, output) is stopped: it could not give
a point back. Once graded, a job renders its feedback page while the next one starts. Results are
written one submission at a time, as each ends, to the course's gradebook (what formgrader and `nbgrader
export` read), its `autograded/` and `feedback/` folders, and a ledger from which a CSV is written: an
interrupted run loses nothing already written, and the next run grades only what is missing.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import hashlib
import json
import os
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from ._errors import LeaklabError

LEDGER = Path("leaklab") / "grades.jsonl"  # under the course root: one line per graded submission
TABLE = Path("leaklab") / "grades.csv"
_JOB_ENV = "LEAKLAB_JOB"  # marks every process a grading job starts, to find them all at its end


@dataclass(frozen=True)
class Limits:
    """What one submission may use while it is graded."""

    seconds: float = 300.0  # the whole notebook
    cell_seconds: float = 60.0  # one cell in the kernel (grader/nbgrader_config.py's default)
    run_seconds: float = 25.0  # one isolated run of the answer (`run_isolated`)
    memory_bytes: int = 4 * 2**30  # address space per process (a thread's stack counts too), not per job
    tasks: int = 1024  # processes and threads of a job together, where a pids cgroup lets us count them


@dataclass
class Submission:
    """One student's notebook for one assignment, as `nbgrader collect` laid it out."""

    student: str
    assignment: str
    path: Path

    def checksum(self) -> str:
        """The file's content hash: a re-submitted notebook is graded again."""
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]
        except OSError:
            return "unreadable"


@dataclass
class Outcome:
    """A graded submission: its score, each test's, and why it was not graded normally, if it was not."""

    student: str
    assignment: str
    checksum: str
    score: float = 0.0
    max_score: float = 0.0
    tests: dict[str, dict] = field(default_factory=dict)  # grade id -> score, max_score, kernel, own, message
    reason: str = ""  # empty, or: unreadable, wrong assignment, answer deleted, tampered, timeout, ...
    detail: str = ""
    seconds: float = 0.0


# --- finding the work ----------------------------------------------------------------------------------


def course_assignments(root: Path) -> list[str]:
    """The assignments of an nbgrader course: the folders of its `source/`."""
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir()) if (root / "source").is_dir() else []


def find_submissions(root: Path, assignments: list[str] | None = None) -> list[Submission]:
    """Every `submitted/<student>/<assignment>/` folder of the course, for the assignments named (or all)."""
    known = course_assignments(root)
    if not known:
        raise LeaklabError(f"{root} is not an nbgrader course (no source/ folder): set one up with `leaklab course`")
    unknown = sorted(set(assignments or ()) - set(known))
    if unknown:
        raise LeaklabError(f"no assignment {', '.join(unknown)} in {root}; assignments: {', '.join(known)}")
    wanted = assignments or known
    found = []
    for student in sorted(p for p in (root / "submitted").glob("*") if p.is_dir()):
        for assignment in wanted:
            folder = student / assignment
            if folder.is_dir():
                found.append(Submission(student.name, assignment, folder / f"{assignment}.ipynb"))
    return found


def read_ledger(root: Path) -> dict[tuple[str, str], Outcome]:
    """The latest outcome per (student, assignment); a line cut short by a crash is skipped."""
    outcomes = {}
    with contextlib.suppress(FileNotFoundError):
        for line in (root / LEDGER).read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, TypeError):
                outcome = Outcome(**json.loads(line))
                outcomes[outcome.student, outcome.assignment] = outcome
    return outcomes


def write_table(root: Path, outcomes: dict[tuple[str, str], Outcome]) -> Path:
    """The CSV: one row per student and notebook, with a reason for anything not graded normally."""
    path = root / TABLE
    unfinished = path.with_suffix(".part")
    with unfinished.open("w", newline="", encoding="utf-8") as table:
        writer = csv.writer(table)
        writer.writerow(["student", "assignment", "notebook", "score", "max_score", "reason", "detail"])
        for (student, assignment), o in sorted(outcomes.items()):
            writer.writerow(
                [student, assignment, f"{assignment}.ipynb", f"{o.score:g}", f"{o.max_score:g}", o.reason, o.detail]
            )
    unfinished.replace(path)
    return path


# --- one submission, in its own process ----------------------------------------------------------------


def _apply_limits(limits: Limits, cgroup: Path | None) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if cgroup is not None:  # the kernel's count of processes and threads, whoever we are
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    elif os.geteuid() != 0:  # counted per user, so on top of what the user already runs
        running = sum(1 for _ in Path("/proc").glob("[0-9]*/task/[0-9]*"))
        resource.setrlimit(resource.RLIMIT_NPROC, (running + limits.tasks, running + limits.tasks))


def _structure_problems(release: dict, submitted: dict) -> dict[str, str]:
    """Test cells a learner edited, deleted, re-typed, re-pointed or moved, by grade id: those tests
    score nothing (nbgrader alone would restore the cells and grade them as if nothing had happened)."""

    def tests(nb: dict) -> dict[str, dict]:
        cells = {}
        for cell in nb.get("cells", []):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if isinstance(meta, dict) and meta.get("grade") and not meta.get("solution"):
                cells[meta.get("grade_id")] = cell
        return cells

    def text(cell: dict) -> str:
        source = cell.get("source", "")
        return ("".join(source) if isinstance(source, list) else str(source)).strip()

    problems = {}
    ours, theirs = tests(release), tests(submitted)
    for grade_id, cell in ours.items():
        mine = theirs.get(grade_id)
        if mine is None:
            problems[grade_id] = f"test cell {grade_id} deleted"
        elif mine.get("cell_type") != cell.get("cell_type"):
            problems[grade_id] = f"test cell {grade_id} turned into {mine.get('cell_type')}"
        elif text(mine) != text(cell):
            problems[grade_id] = f"test cell {grade_id} edited"
        elif mine["metadata"]["nbgrader"].get("points") != cell["metadata"]["nbgrader"].get("points"):
            problems[grade_id] = f"points of {grade_id} changed"
    order = [g for g in theirs if g in ours]
    in_place = _common_order(order, [g for g in ours if g in theirs])
    for grade_id in order:
        if grade_id not in in_place:
            problems.setdefault(grade_id, f"test cell {grade_id} moved")
    return problems


def _common_order(mine: list[str], theirs: list[str]) -> set[str]:
    """The longest part of `mine` in the order of `theirs` (a longest common subsequence): what was not moved."""
    best: list[list[tuple[str, ...]]] = [[()] * (len(theirs) + 1) for _ in range(len(mine) + 1)]
    for i, a in enumerate(mine):
        for j, b in enumerate(theirs):
            best[i + 1][j + 1] = (*best[i][j], a) if a == b else max(best[i][j + 1], best[i + 1][j], key=len)
    return set(best[-1][-1])


# Words in a failed test's message (the grader's own run, or the kernel's) that say why it failed, when
# the cause is a limit or an answer that ended its run, not a wrong answer: the first that matches.
_CAUSES = (
    (("CellTimeoutError", "did not end within", "never checked"), "timeout"),
    (("MemoryError",), "memory limit"),
    (("can't start new thread", "Resource temporarily unavailable", "BlockingIOError"), "process limit"),
    (("printed more than", "File too large"), "output limit"),
    (("the answer cell raised", "ended without a result"), "answer failed"),
)
# Causes after which the kernel's run is not worth making: it could only take points away from a run
# that already has none, and would hold the kernel up as long as the limits let it.
_NOT_WORTH_A_KERNEL = {"timeout", "memory limit", "process limit", "output limit"}


def _cause(messages: list[str]) -> tuple[str, str]:
    """The reason and the telling message, if a limit or an answer that ended early explains a failure."""
    for words, reason in _CAUSES:
        for message in messages:
            if any(w in message for w in words):
                return reason, message
    return "", ""


def _max_score(source: dict) -> float:
    return sum(
        float(c["metadata"]["nbgrader"].get("points", 0))
        for c in source["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    )


def grade_one(
    sub: Submission,
    *,
    repo: Path,
    root: Path,
    workdir: Path,
    stop_kernel: Callable[[], None],
    limits: Limits = Limits(),
) -> Outcome:
    """Grade one submission (in the job's own process): the grader's run and nbgrader's, combined."""
    from ._grading import _read_notebook, grade_ids
    from ._isolation import TIMEOUT_ENV, VERDICTS_ENV, publish_runs

    source_path = root / "source" / sub.assignment / f"{sub.assignment}.ipynb"
    source = json.loads(source_path.read_text(encoding="utf-8"))
    outcome = Outcome(sub.student, sub.assignment, sub.checksum(), max_score=_max_score(source))
    try:
        submitted = _read_notebook(sub.path)
    except LeaklabError as exc:
        outcome.reason, outcome.detail = ("missing" if not sub.path.exists() else "unreadable"), str(exc)
        return outcome
    mine, answers = grade_ids(submitted), grade_ids(source, solutions_only=True)
    if not mine & grade_ids(source):
        others = [a for a in course_assignments(root) if a != sub.assignment]
        belongs = [a for a in others if any(grade_id.startswith(a + "_") for grade_id in mine)]
        outcome.reason = "wrong assignment"
        outcome.detail = (
            f"this is a notebook of {belongs[0]}" if belongs else "none of its cells is from this assignment"
        )
        return outcome
    if answers - mine:
        outcome.reason, outcome.detail = "answer deleted", f"no answer cell {', '.join(sorted(answers - mine))}"
        return outcome

    os.environ[TIMEOUT_ENV] = str(limits.run_seconds)
    verdicts_file, measured, kernel_done = workdir / "verdicts.json", threading.Event(), threading.Event()
    os.environ[VERDICTS_ENV] = str(verdicts_file)  # the kernel shows them, never measures again
    publish = partial(publish_runs, verdicts_file, after=measured)  # just before the kernel's first test cell

    # The grader's own run of the tests, while the kernel runs the notebook up to its tests.
    with ThreadPoolExecutor(1) as pool:
        own = pool.submit(_measure, source, submitted, measured, stop_kernel, kernel_done)
        try:
            kernel = _kernel_run(sub, repo, root, workdir, limits, publish)
        finally:
            kernel_done.set()
        verdicts, cause, futile = own.result()
    if futile:  # stopped: the kernel could not give back a point and would hold up the job till a limit
        kernel = {}
        (workdir / "autograded.ipynb").unlink(missing_ok=True)
        outcome.reason, outcome.detail = cause

    overruled = []
    for grade_id, own in verdicts.items():
        # The kernel's run can only take points away: a test it did not run (a cell the learner
        # deleted, a kernel that died) is judged by the grader's own run alone.
        theirs = kernel.get(grade_id)
        in_kernel = theirs.score if theirs else own.score
        if in_kernel > own.score:
            overruled.append(grade_id)
        outcome.tests[grade_id] = {
            "score": min(own.score, in_kernel),
            "max_score": own.max_score,
            "kernel": in_kernel,
            "own": own.score,
            "message": own.message or (theirs.message if theirs else ""),
        }
    if "error" in kernel:
        outcome.reason, outcome.detail = kernel["error"]
    if not outcome.reason:
        lost = [t["message"] for t in outcome.tests.values() if t["score"] < t["max_score"]]
        outcome.reason, outcome.detail = _cause(lost)
    release = root / "release" / sub.assignment / f"{sub.assignment}.ipynb"
    problems = (
        _structure_problems(json.loads(release.read_text(encoding="utf-8")), submitted) if release.exists() else {}
    )
    for grade_id, problem in problems.items():  # a test whose cell was tampered with scores nothing
        if grade_id in outcome.tests:
            outcome.tests[grade_id].update(score=0.0, message=problem)
    outcome.score = sum(t["score"] for t in outcome.tests.values())
    said = list(problems.values())
    if overruled:
        said.insert(0, f"passed in its kernel but not in the grader's own run: {', '.join(overruled)}")
    if said and not outcome.reason:
        outcome.reason, outcome.detail = "tampered", "; ".join(said)
    elif said:
        outcome.detail = "; ".join([outcome.detail, *said])
    return outcome


def _measure(
    source: dict,
    submitted: dict,
    measured: threading.Event,
    stop_kernel: Callable[[], None],
    kernel_done: threading.Event,
) -> tuple[dict, tuple[str, str], bool]:
    """The grader's own run of the tests (`verify`), then `measured` is set; stops the kernel if this run
    already failed every test on a limit. Returns the verdicts, the cause of failures, and whether the
    kernel was stopped."""
    from ._verify import verify

    try:
        verdicts = verify(source, submitted)
    finally:  # also when it fails: the kernel waits for it
        measured.set()
    cause = _cause([v.message for v in verdicts.values() if v.score < v.max_score])
    futile = all(v.score == 0 for v in verdicts.values()) and cause[0] in _NOT_WORTH_A_KERNEL
    while futile and not kernel_done.is_set():  # until nbgrader gives up: a kernel it starts late goes too
        stop_kernel()
        kernel_done.wait(0.2)
    return verdicts, cause, futile


def _kernel_run(
    sub: Submission, repo: Path, root: Path, workdir: Path, limits: Limits, before_tests: Callable[[], None]
) -> dict:
    """nbgrader's autograde of the submission, in a kernel shown the grader's own results (published by
    `before_tests`): its scores by grade id, plus "error": (reason, detail) if it could not grade.
    The autograded notebook goes to `workdir`; the throwaway course stays in `workdir/course` for the
    feedback page (`_write_feedback`)."""
    from ._grading import TempCourse

    (workdir / "course").mkdir()
    course = TempCourse(repo, root=workdir / "course", cell_timeout_s=limits.cell_seconds)
    course.hook_tests(before_tests)
    kernel: dict = {}
    try:
        course.generate_cached(sub.assignment, root / "source" / sub.assignment / f"{sub.assignment}.ipynb")
        kernel.update(course.autograde(sub.assignment, sub.student, sub.path))
        graded = course.root / "autograded" / sub.student / sub.assignment / f"{sub.assignment}.ipynb"
        shutil.copyfile(graded, workdir / "autograded.ipynb")
    except LeaklabError as exc:
        kernel["error"] = ("kernel died" if "kernel died" in str(exc) else "not graded by nbgrader", str(exc))
    return kernel


def _write_feedback(sub: Submission, repo: Path, workdir: Path) -> None:
    """nbgrader's feedback page for the autograded notebook, from the course `_kernel_run` left behind."""
    from ._grading import TempCourse

    if (workdir / "autograded.ipynb").exists():
        course = TempCourse(repo, root=workdir / "course")
        course.feedback(sub.assignment, sub.student, workdir / "feedback.html")


def _job(
    sub: Submission, repo: Path, root: Path, workdir: Path, limits: Limits, cgroup: Path | None, secret: str
) -> None:
    """The forked child: limits, then grade, then write the outcome; never returns.

    The outcome's file name is `secret`, known to this process and its parent only (never in an
    environment or on a command line), and it is written once every other process of the job is gone:
    what the submission's code started cannot put an outcome of its own in its place.
    """
    code = 1
    try:
        os.setsid()
        log = os.open(workdir / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.environ[_JOB_ENV] = workdir.name
        os.environ["HOME"] = str(workdir)
        _apply_limits(limits, cgroup)
        started = time.monotonic()
        stop_kernel = lambda: _kill_others(workdir.name, cgroup)  # noqa: E731 - the job's every other process
        outcome = grade_one(sub, repo=repo, root=root, workdir=workdir, stop_kernel=stop_kernel, limits=limits)
        outcome.seconds = round(time.monotonic() - started, 2)
        _kill_others(workdir.name, cgroup)
        (workdir / f"{secret}.part").write_text(json.dumps(asdict(outcome)), encoding="utf-8")
        (workdir / f"{secret}.part").replace(workdir / f"{secret}.json")
        # Graded: the next job may start while this one renders the page (no learner code runs any more).
        _write_feedback(sub, repo, workdir)
        code = 0
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        os._exit(code)


# --- the jobs' limits and their clean-up ----------------------------------------------------------------


def _pids_cgroup_root() -> Path | None:
    """A writable cgroup (v1) pids hierarchy, if the machine gives us one."""
    root = Path("/sys/fs/cgroup/pids")
    return root if root.is_dir() and os.access(root, os.W_OK) else None


def _make_cgroup(name: str, limits: Limits) -> Path | None:
    base = _pids_cgroup_root()
    if base is None:
        return None
    try:
        group = base / name
        group.mkdir()
        (group / "pids.max").write_text(str(limits.tasks))
        return group
    except OSError:
        return None


def _kill_job(child: int, workdir: Path, cgroup: Path | None) -> None:
    """Kill the job's process and everything it started, however it tried to get away."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child, signal.SIGKILL)
    _kill_others(workdir.name, cgroup)
    if cgroup is not None:
        with contextlib.suppress(OSError):
            cgroup.rmdir()


def _kill_others(token: str, cgroup: Path | None) -> None:
    """Kill every process of the job but the caller, until none is left (or a second has passed)."""
    for _ in range(50):
        victims = _job_processes(token, cgroup)
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _job_processes(token: str, cgroup: Path | None) -> list[int]:
    """The job's processes but the caller: by its cgroup, or by the marker in their environment."""
    if cgroup is not None:
        with contextlib.suppress(OSError):
            return [int(p) for p in (cgroup / "cgroup.procs").read_text().split() if int(p) != os.getpid()]
        return []
    marker = f"{_JOB_ENV}={token}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
    return [pid for pid in found if pid != os.getpid()]


# --- recording ------------------------------------------------------------------------------------------


def _record(root: Path, sub: Submission, outcome: Outcome, workdir: Path) -> None:
    """Write one outcome: gradebook, autograded notebook, feedback page (if the job wrote one in time),
    then the ledger line last."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader 0.9's own session use, on SQLAlchemy 2

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        # Every student who handed something in is on the roster, so `nbgrader export` lists a zero for
        # a notebook that could not be graded at all (its reason is in grades.csv).
        gradebook.update_or_create_student(sub.student)
        if outcome.tests:
            # With the time `nbgrader collect` wrote, as nbgrader's autograde records it: the formgrader
            # counts a submission as autograded only when the two agree, and judges lateness by it.
            gradebook.update_or_create_submission(sub.assignment, sub.student, timestamp=_submitted_at(sub))
            for grade_id, test in outcome.tests.items():
                grade = gradebook.find_grade(grade_id, sub.assignment, sub.assignment, sub.student)
                grade.auto_score, grade.needs_manual_grade = test["score"], False
            if outcome.reason:
                for cell in gradebook.find_notebook(sub.assignment, sub.assignment).solution_cells:
                    with contextlib.suppress(MissingEntry):
                        comment = gradebook.find_comment(cell.name, sub.assignment, sub.assignment, sub.student)
                        comment.auto_comment = f"leaklab: {outcome.reason}: {outcome.detail}"
        else:  # not gradable (now): no score of an earlier version of the notebook may stay behind
            with contextlib.suppress(MissingEntry):
                gradebook.remove_submission(sub.assignment, sub.student)
        gradebook.db.commit()
    for name, folder in (("autograded.ipynb", "autograded"), ("feedback.html", "feedback")):
        produced = workdir / name
        target = root / folder / sub.student / sub.assignment / f"{sub.assignment}{Path(name).suffix}"
        if produced.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(produced, target.with_suffix(".part"))
            target.with_suffix(".part").replace(target)
        else:  # none this time: an earlier version's page must not pass for this one's
            target.unlink(missing_ok=True)
    ledger = root / LEDGER
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a", encoding="utf-8") as lines:
        lines.write(json.dumps(asdict(outcome)) + "\n")
        lines.flush()
        os.fsync(lines.fileno())


def _submitted_at(sub: Submission) -> datetime.datetime | None:
    """The submission's `timestamp.txt` (written by `nbgrader submit` and kept by `collect`), if readable."""
    from nbgrader.utils import parse_utc

    with contextlib.suppress(OSError, ValueError):
        return parse_utc((sub.path.parent / "timestamp.txt").read_text(encoding="utf-8").strip())
    return None


# --- the class ------------------------------------------------------------------------------------------


class Progress:
    """One line on stderr, redrawn in place on a terminal; one line per submission otherwise."""

    def __init__(self, total: int, write: Callable[[str], None] | None = None) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.live = write is None and sys.stderr.isatty()
        self.write = write or (lambda text: print(text, file=sys.stderr, flush=True))

    def update(self, outcome: Outcome, running: int) -> None:
        """Count one more submission graded."""
        self.done += 1
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        note = f"{outcome.student} {outcome.assignment} {outcome.score:g}/{outcome.max_score:g}"
        note += f" ({outcome.reason})" if outcome.reason else ""
        if self.live:
            bar = "#" * int(30 * self.done / self.total)
            text = f"\r[{bar:30}] {self.done}/{self.total}, {running} running, {elapsed:.0f} s, ~{left:.0f} s left"
            self.write(f"{text}  {note[:40]:40}" + ("\n" if self.done == self.total else ""))
        else:
            self.write(f"[{self.done}/{self.total}] {note}  ({elapsed:.0f} s, ~{left:.0f} s left)")


def _stale(outcome: Outcome | None, sub: Submission) -> bool:
    return outcome is None or outcome.checksum != sub.checksum()


def grade_class(
    root: Path,
    *,
    repo: Path,
    assignments: list[str] | None = None,
    jobs: int | None = None,
    force: bool = False,
    limits: Limits = Limits(),
    progress: Callable[[str], None] | None = None,
) -> dict[tuple[str, str], Outcome]:
    """Grade every submission not yet graded (all with `force`), `jobs` at a time; returns every outcome
    in the ledger. Interrupted, it kills the running jobs and keeps everything already written."""
    # Imported once here, so that every forked job starts warm: nbgrader's apps, autograde and feedback.
    import nbgrader.apps
    import nbgrader.converters  # noqa: F401
    from nbconvert.exporters import HTMLExporter

    HTMLExporter().template  # noqa: B018 - the feedback page's templates, loaded once (~0.3 s a job)

    root = root.resolve()
    submissions = find_submissions(root, assignments)
    ledger = read_ledger(root)
    todo = [s for s in submissions if force or _stale(ledger.get((s.student, s.assignment)), s)]
    say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    if not todo:
        say(f"nothing to grade: {len(submissions)} submissions already graded (--force grades them again)")
        return ledger
    jobs = max(1, jobs or os.cpu_count() or 1)
    say(f"grading {len(todo)} submissions ({len(submissions) - len(todo)} already graded), {jobs} at a time")
    bar = Progress(len(todo), progress)
    if _pids_cgroup_root() is None and os.geteuid() == 0:
        say(
            "warning: no limit on the processes and threads of a submission: running as root without a "
            "writable pids cgroup (/sys/fs/cgroup/pids, cgroup v1), a fork or thread bomb is bounded only "
            "by the memory and time limits; run the grader as another user, or where that cgroup is writable"
        )
    # Outside the course: the path of a job's folder (which its kernel is shown) says nothing of where
    # the gradebook and the ledger are.
    scratch = Path(tempfile.mkdtemp(prefix="leaklab-class-"))
    running: dict[int, tuple[Submission, Path, float, Path | None, str]] = {}
    try:
        queue = list(reversed(todo))
        number = 0
        while queue or running:
            # A job that has written its outcome is only rendering its feedback page: its slot is free.
            grading = sum(not (w / f"{key}.json").exists() for _, w, _, _, key in running.values())
            while queue and grading < jobs:
                grading += 1
                sub = queue.pop()
                number += 1
                workdir = scratch / f"job-{os.getpid()}-{number}"
                workdir.mkdir()
                cgroup = _make_cgroup(f"leaklab-{os.getpid()}-{number}", limits)
                secret = secrets.token_hex(16)
                sys.stdout.flush()
                sys.stderr.flush()
                child = os.fork()
                if child == 0:
                    _job(sub, repo, root, workdir, limits, cgroup, secret)
                running[child] = (sub, workdir, time.monotonic(), cgroup, secret)
            time.sleep(0.05)
            for child, (sub, workdir, started, cgroup, secret) in list(running.items()):
                ended = os.waitpid(child, os.WNOHANG)[0] == child
                overdue = time.monotonic() - started > limits.seconds
                if not (ended or overdue):
                    continue
                _kill_job(child, workdir, cgroup)
                if not ended:
                    os.waitpid(child, 0)
                del running[child]
                written = workdir / f"{secret}.json"  # graded in time, even if its page was not
                outcome = _collect(root, sub, written, overdue and not ended and not written.exists(), limits)
                _record(root, sub, outcome, workdir)
                ledger[sub.student, sub.assignment] = outcome
                shutil.rmtree(workdir, ignore_errors=True)
                bar.update(outcome, len(running))
    finally:
        for child, (_, workdir, _, cgroup, _) in running.items():
            _kill_job(child, workdir, cgroup)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
        shutil.rmtree(scratch, ignore_errors=True)
        if ledger:
            write_table(root, ledger)
    return ledger


def _collect(root: Path, sub: Submission, written: Path, timed_out: bool, limits: Limits) -> Outcome:
    """The outcome a job wrote, or one that says why it wrote none."""
    workdir = written.parent
    if written.exists() and not timed_out:
        return Outcome(**json.loads(written.read_text(encoding="utf-8")))
    source = root / "source" / sub.assignment / f"{sub.assignment}.ipynb"
    outcome = Outcome(sub.student, sub.assignment, sub.checksum(), max_score=_max_score(json.loads(source.read_text())))
    if timed_out:
        outcome.reason, outcome.detail = "timeout", f"grading it took longer than {limits.seconds:g} s and was stopped"
        return outcome
    log = (workdir / "log.txt").read_text(encoding="utf-8", errors="replace") if (workdir / "log.txt").exists() else ""
    last = [line for line in log.strip().splitlines() if line.strip()][-1:] or ["no output"]
    cause = _cause([log])[0]  # a job that hit a limit where nothing could catch it (a thread of nbgrader's)
    outcome.reason = cause if cause in _NOT_WORTH_A_KERNEL else "grader crashed"
    outcome.detail = last[0][:300]
    return outcome
