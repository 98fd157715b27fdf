"""One submission graded in a process of its own, forked from the class grader (nbgrader already
imported): limits first, then `core.grade_submission` with nbgrader's autograde as the kernel's run,
then the outcome handed back through a file only this process and its parent know the name of."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..._errors import LeaklabError
from .. import cells
from ..checks import NotGradable, check_assignment, missing_answers, read_notebook
from ..core import Lesson, grade_submission
from ..isolation import RUN_TIMEOUT_ENV
from ..kernel import KernelRun
from ..nbgrader_course import NbgraderCourse
from ..results import Reason, reason_of
from ..settings import Limits
from . import processes
from .discovery import Submission, course_assignments, release_of, source_of
from .records import Outcome


@dataclass
class JobFiles:
    """A job's scratch folder (outside the course) and the secret that names its hand-back files: known to
    the job's process and its parent only, never in an environment or on a command line."""

    workdir: Path
    secret: str

    @property
    def outcome(self) -> Path:
        return self.workdir / f"{self.secret}.json"

    @property
    def crash(self) -> Path:
        return self.workdir / f"{self.secret}.crash.json"

    @property
    def log(self) -> Path:
        return self.workdir / "log.txt"

    @property
    def autograded(self) -> Path:
        return self.workdir / "autograded.ipynb"

    @property
    def feedback(self) -> Path:
        return self.workdir / "feedback.html"

    @property
    def produced(self) -> dict[str, Path]:
        """What `records.record` copies into the course, by folder."""
        return {"autograded": self.autograded, "feedback": self.feedback}

    @property
    def course(self) -> Path:
        return self.workdir / "course"

    @property
    def kernel(self) -> Path:
        """The sandboxed kernel's own folder: beside the job's course, never in it."""
        return self.workdir / "kernel"


def empty_outcome(sub: Submission, root: Path) -> Outcome:
    source = json.loads(source_of(root, sub.assignment).read_text(encoding="utf-8"))
    return Outcome(sub.student, sub.assignment, sub.checksum(), max_score=cells.max_score(source))


def grade_one(
    sub: Submission, *, checkout: Path, root: Path, files: JobFiles, limits: Limits, stop_kernel: Callable[[], None]
) -> Outcome:
    """Grade one submission (in the job's own process)."""
    outcome = empty_outcome(sub, root)
    lesson = Lesson.read(sub.assignment, source_of(root, sub.assignment), release_of(root, sub.assignment))
    try:
        submitted = read_notebook(sub.path)
        check_assignment(submitted, lesson.source, sub.assignment, course_assignments(root))
        missing = missing_answers(submitted, lesson.source)
        if missing:
            raise NotGradable(Reason.ANSWER_DELETED, f"no answer cell {', '.join(missing)}")
    except NotGradable as exc:
        outcome.reason, outcome.detail = exc.reason, str(exc)
        return outcome
    os.environ[RUN_TIMEOUT_ENV] = str(limits.run_seconds)

    def run_kernel(before_tests: Callable[[], None]) -> KernelRun:
        files.course.mkdir()
        course = NbgraderCourse(checkout, files.course, cell_timeout_s=limits.cell_seconds, kernel_dir=files.kernel)
        course.hook_tests(before_tests, lesson.source)
        try:
            course.generate_for_kernel(sub.assignment, source_of(root, sub.assignment))
        except LeaklabError as exc:
            return KernelRun({}, (Reason.NOT_GRADED_BY_NBGRADER, str(exc)))
        return course.autograde(sub.assignment, sub.student, sub.path)

    graded = grade_submission(lesson, submitted, run_kernel, stop_kernel=stop_kernel)
    if graded.autograded is not None:
        shutil.copyfile(graded.autograded, files.autograded)  # the course keeps its own, for the feedback page
    outcome.tests, outcome.reason, outcome.detail = graded.tests, graded.reason, graded.detail
    outcome.score = graded.score
    return outcome


def run_job(
    sub: Submission,
    checkout: Path,
    root: Path,
    files: JobFiles,
    limits: Limits,
    cgroup: Path | None,
    memory: Path | None = None,
) -> None:
    """The forked child: limits, then grade, then hand the outcome back; never returns.

    The outcome is written once every other process of the job is gone: what the submission's code
    started cannot put an outcome of its own in its place. A failure of the job itself is handed back
    as a crash record, with the limit it hit where its exception says so.
    """
    code = 1
    token = files.workdir.name
    try:
        os.setsid()
        log = os.open(files.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.environ[processes.JOB_ENV] = token
        os.environ["HOME"] = str(files.workdir)
        processes.apply_limits(limits, cgroup, memory)
        started = time.monotonic()
        stop_kernel = lambda: processes.kill_others(token, cgroup)  # noqa: E731 - the job's every other process
        outcome = grade_one(sub, checkout=checkout, root=root, files=files, limits=limits, stop_kernel=stop_kernel)
        outcome.seconds = round(time.monotonic() - started, 2)
        processes.kill_others(token, cgroup)
        outcome.reason, outcome.detail = memory_reason(
            outcome.reason, outcome.detail, processes.memory_events(memory), limits.job_memory_bytes
        )
        outcome.reason, outcome.detail = process_reason(
            outcome.reason, outcome.detail, processes.refused_tasks(cgroup), limits.tasks
        )
        _hand_back(files.outcome, outcome.to_json())
        # Graded: the next job may start while this one renders the page (no learner code runs any more).
        if files.autograded.exists():
            NbgraderCourse(checkout, files.course).feedback(sub.assignment, sub.student, files.feedback)
        code = 0
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
            if not files.outcome.exists():
                processes.kill_others(token, cgroup)
                reason = reason_of(exc)
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                _hand_back(files.crash, {"reason": reason.value if reason else "", "detail": detail[:300]})
    finally:
        os._exit(code)


def _hand_back(path: Path, data: dict) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(data), encoding="utf-8")
    partial.replace(path)


def memory_reason(
    reason: Reason | None, detail: str, events: processes.MemoryEvents, limit_bytes: int
) -> tuple[Reason | None, str]:
    """A graded job's reason once its memory cgroup is read: processes the OOM killer ended for the job's
    memory explain what failed (a kernel that died, a run without a result) better than anything else,
    and so does a job held at its memory limit when time ran out (how long the kernel stalls it there
    depends on the machine's load; that it got there does not)."""
    limit = f"{limit_bytes / 2**30:g} GiB"
    if events.oom_kills:
        said = f"its processes went over {limit} together: {events.oom_kills} ended by the OOM killer"
    elif events.reached_limit and reason is Reason.TIMEOUT:
        said = f"its processes reached {limit} together and were held at that limit until time ran out"
    else:
        return reason, detail
    return Reason.MEMORY_LIMIT, "; ".join(filter(None, [said, detail]))


def process_reason(reason: Reason | None, detail: str, refused: int, tasks: int) -> tuple[Reason | None, str]:
    """A timed-out job's reason once its pids cgroup is read: one that was refused new processes or threads
    at its limit hit the process limit (how long it then took to time out depends on the machine's load;
    that it got there does not)."""
    if not refused or reason is not Reason.TIMEOUT:
        return reason, detail
    said = f"its processes and threads reached {tasks} together ({refused} more refused) before time ran out"
    return Reason.PROCESS_LIMIT, "; ".join(filter(None, [said, detail]))


def unfinished_reason(
    *, timed_out: bool, crash_reason: str, exit_code: int | None, memory: processes.MemoryEvents | None = None
) -> Reason:
    """Why a job handed back no outcome: its memory (the OOM killer ended some of its processes, or it
    was held at its limit when time ran out), its time, the limit its own crash record names, the signal
    that ended it, or else the grader itself failed."""
    memory = memory or processes.MemoryEvents()
    if memory.oom_kills or (timed_out and memory.reached_limit):
        return Reason.MEMORY_LIMIT
    if timed_out:
        return Reason.TIMEOUT
    if crash_reason:
        return Reason(crash_reason)
    if exit_code == -signal.SIGXFSZ:
        return Reason.OUTPUT_LIMIT
    return Reason.GRADER_CRASHED


def collect(
    sub: Submission,
    root: Path,
    files: JobFiles,
    *,
    timed_out: bool,
    exit_code: int | None,
    limits: Limits,
    memory: processes.MemoryEvents | None = None,
) -> Outcome:
    """The outcome a job handed back, or one that says why it handed back none."""
    if files.outcome.exists() and not timed_out:
        return Outcome.from_json(json.loads(files.outcome.read_text(encoding="utf-8")))
    outcome = empty_outcome(sub, root)
    crash: dict = {}
    with contextlib.suppress(OSError, ValueError):
        crash = json.loads(files.crash.read_text(encoding="utf-8"))
    outcome.reason = unfinished_reason(
        timed_out=timed_out, crash_reason=crash.get("reason", ""), exit_code=exit_code, memory=memory
    )
    events = memory or processes.MemoryEvents()
    reason, said = memory_reason(Reason.TIMEOUT if timed_out else None, "", events, limits.job_memory_bytes)
    if reason is Reason.MEMORY_LIMIT:  # what the cgroup saw says why, in memory_reason's words
        outcome.detail = said
    elif timed_out:
        outcome.detail = f"grading it took longer than {limits.seconds:g} s and was stopped"
    elif crash.get("detail"):
        outcome.detail = crash["detail"]
    else:
        log = files.log.read_text(encoding="utf-8", errors="replace") if files.log.exists() else ""
        outcome.detail = ([line for line in log.strip().splitlines() if line.strip()][-1:] or ["no output"])[0][:300]
    return outcome
