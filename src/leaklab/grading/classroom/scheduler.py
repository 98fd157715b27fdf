"""Runs the class's jobs, `jobs` at a time, each in a forked process with its limits (or hands them to
`cluster`), and records each outcome as its job ends; interrupted, it kills the running jobs and keeps
everything already written."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..._errors import LeaklabError
from .. import sandbox as grading_sandbox
from ..settings import Limits
from . import processes
from .discovery import Submission, find_submissions
from .job import JobFiles, collect, process_reason, run_job
from .records import Outcome, read_ledger, record, write_table


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
        note += f" ({outcome.reason.value})" if outcome.reason else ""
        if self.live:
            bar = "#" * int(30 * self.done / self.total)
            text = f"\r[{bar:30}] {self.done}/{self.total}, {running} running, {elapsed:.0f} s, ~{left:.0f} s left"
            self.write(f"{text}  {note[:40]:40}" + ("\n" if self.done == self.total else ""))
        else:
            self.write(f"[{self.done}/{self.total}] {note}  ({elapsed:.0f} s, ~{left:.0f} s left)")


class IdleCores:
    """How many of the machine's cores sat idle since the last look, from the kernel's own count
    (/proc/stat): a grading job waits in places (the lessons compress hours into sleeps), and a core
    the jobs leave idle can grade another submission."""

    def __init__(self, read: Callable[[], tuple[int, int] | None] | None = None) -> None:
        self._read = read or _cpu_ticks
        self._last = self._read()

    def take(self) -> float | None:
        """Idle cores (0 to the core count) over the time since the last call; None where unknown."""
        now, last = self._read(), self._last
        self._last = now
        if now is None or last is None or now[1] <= last[1]:
            return None
        return (now[0] - last[0]) / (now[1] - last[1]) * (os.cpu_count() or 1)


def _cpu_ticks() -> tuple[int, int] | None:
    """(idle, total) ticks of every core since boot; idle counts the time waiting on the disk too."""
    try:
        first = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()
        ticks = [int(field) for field in first[1:9]]
    except (OSError, ValueError):
        return None
    return ticks[3] + ticks[4], sum(ticks)


def _available_memory() -> int | None:
    """The memory the kernel says new work can take without swapping (MemAvailable), in bytes."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class Slots:
    """How many jobs may grade at once. A fixed `--jobs N` is N. By default, one per core, and beyond
    that one more whenever the machine has had half a core idle over the last second and has a job's
    memory limit free, up to `EXTRA` per core: a loaded machine (or one whose jobs keep its cores busy)
    grades one per core, as with `--jobs`; one whose jobs wait keeps its cores busy."""

    EXTRA = 3  # at most this many jobs per core
    LOOK_S = 1.0  # the window idle cores are measured over: at most one extra job a second
    IDLE = 0.5  # idle cores over that window that let one more job start

    def __init__(
        self,
        jobs: int | None,
        idle: IdleCores | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        job_memory_bytes: int = 0,
        available: Callable[[], int | None] | None = None,
    ):
        cores = os.cpu_count() or 1
        self.fixed = jobs is not None
        self.floor = jobs if jobs is not None else cores
        self.ceiling = jobs if jobs is not None else cores * self.EXTRA
        self._idle, self._clock = idle or IdleCores(), clock
        self._job_memory, self._available = job_memory_bytes, available or _available_memory
        self._since = clock()

    def __str__(self) -> str:
        more = "" if self.fixed else f", up to {self.ceiling} while cores sit idle"
        return f"{self.floor} at a time{more}"

    def open(self, grading: int) -> bool:
        """Whether one more job may start while `grading` are grading."""
        if grading < self.floor:
            return True
        if grading >= self.ceiling or self._clock() - self._since < self.LOOK_S:
            return False
        idle, self._since = self._idle.take(), self._clock()
        if idle is None or idle < self.IDLE:
            return False
        room = self._available()  # an extra job must not take the memory the running ones may reach
        return room is None or room >= self._job_memory


@dataclass
class Running:
    """A job that has been started."""

    sub: Submission
    files: JobFiles
    started: float
    cgroup: Path | None  # pids
    memory: Path | None = None

    @property
    def graded(self) -> bool:
        """It has handed back its outcome and only renders its feedback page: its slot is free."""
        return self.files.outcome.exists()


@dataclass
class ClassRun:
    """What one run of the class grader did: every outcome in the ledger, those graded this time, and
    those a cluster could not grade this time (left for the next run)."""

    outcomes: dict[tuple[str, str], Outcome]
    graded: list[Outcome]
    left: list[Submission] = field(default_factory=list)


def _submissions(n: int) -> str:
    return f"{n} submission" if n == 1 else f"{n} submissions"


def _warm_up() -> None:
    """Done once here, so that every forked job starts warm: what nbgrader's autograde and feedback import,
    load and compile on first use (measured: about 0.3 s of CPU a job otherwise)."""
    import nbgrader.apps  # noqa: F401
    from jupyter_client.kernelspec import KernelSpecManager
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
    from nbgrader.converters import GenerateFeedback
    from sqlalchemy import create_engine, inspect

    from ..kernel import font_cache, ready_to_draw
    from ..nbgrader_course import feedback_exporter

    font_cache()  # found (and built) while HOME is still the grader's: each job sets its own
    ready_to_draw()  # matplotlib loaded, and its fonts: each job draws its kernel's figures
    KernelSpecManager().find_kernel_specs()  # imports IPython, for its paths
    inspect(create_engine("sqlite://")).get_table_names()  # SQLAlchemy's SQLite dialect, as a gradebook opens
    page = new_notebook(  # a page as the feedback shows one: markdown, highlighted code, its outputs
        cells=[
            new_markdown_cell("# A *lesson*\n\n- `code`\n- [a link](https://example.org)"),
            new_code_cell("print(1)", outputs=[new_output("stream", name="stdout", text="1\n")]),
        ],
        metadata={"language_info": {"name": "python", "pygments_lexer": "ipython3"}},
    )
    feedback = GenerateFeedback()  # the feedback page's configuration: nbgrader's template and folders
    scores = {"nbgrader": {"notebook": "lesson", "score": 1, "max_score": 1, "late_penalty": 0}}  # as GetGrades sets
    feedback_exporter()(parent=feedback, config=feedback.config).from_notebook_node(page, resources=scores)


def grade_class(
    root: Path,
    *,
    checkout: Path,
    assignments: list[str] | None = None,
    jobs: int | None = None,
    force: bool = False,
    limits: Limits | None = None,
    unsafe_no_sandbox: bool = False,
    cluster: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ClassRun:
    """Grade every submission not yet graded (all with `force`), `jobs` at a time, each job's learner code
    in a sandbox; where the machine cannot make one, only with `unsafe_no_sandbox`. With `cluster` (a
    Dask scheduler's address or scheduler file), the jobs run on its workers instead."""
    root, limits = root.resolve(), limits or Limits()
    submissions = find_submissions(root, assignments)
    ledger = read_ledger(root)
    todo = [s for s in submissions if force or _stale(ledger.get((s.student, s.assignment)), s)]
    say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    if not todo:
        say(f"nothing to grade: {_submissions(len(submissions))} already graded (--force grades them again)")
        return ClassRun(ledger, [])
    already = f"{_submissions(len(todo))} ({len(submissions) - len(todo)} already graded)"
    graded: list[Outcome] = []
    left: list[Submission] = []
    try:
        if cluster is not None:
            from .cluster import grade_on_cluster  # Dask loads only for a cluster

            say(f"grading {already} on the Dask cluster at {cluster}")
            left = grade_on_cluster(
                cluster,
                todo,
                root=root,
                checkout=checkout,
                limits=limits,
                unsafe_no_sandbox=unsafe_no_sandbox,
                bar=Progress(len(todo), progress),
                graded=graded,
                say=say,
            )
        else:
            prepare_machine(unsafe_no_sandbox, limits, say)
            slots = Slots(jobs, job_memory_bytes=limits.job_memory_bytes)
            say(f"grading {already}, {slots}")
            _grade_here(
                todo,
                slots,
                root=root,
                checkout=checkout,
                limits=limits,
                bar=Progress(len(todo), progress),
                graded=graded,
            )
    finally:
        # From the ledger on disk: a Ctrl-C just after a job's ledger line was written, before the loop
        # took its outcome in, must not leave that line out of the table.
        ledger = read_ledger(root)
        if ledger:
            write_table(root, ledger)
    return ClassRun(ledger, graded, left)


def _grade_here(
    todo: list[Submission],
    slots: Slots,
    *,
    root: Path,
    checkout: Path,
    limits: Limits,
    bar: Progress,
    graded: list[Outcome],
) -> None:
    """The jobs on this machine, each forked from this process, as many at a time as `slots` opens."""
    # Outside the course: the path of a job's folder (which its kernel is shown) says nothing of where
    # the gradebook and the ledger are.
    scratch = Path(tempfile.mkdtemp(prefix="leaklab-class-"))
    running: dict[int, Running] = {}
    try:
        queue, number = list(reversed(todo)), 0
        while queue or running:
            while queue and slots.open(sum(not job.graded for job in running.values())):
                number += 1
                child, job = _start(queue.pop(), checkout, root, scratch / f"job-{os.getpid()}-{number}", limits)
                running[child] = job
            time.sleep(0.05)
            for child, job in list(running.items()):
                ended, status = _ended(child)
                overdue = time.monotonic() - job.started > limits.seconds
                if not (ended or overdue):
                    continue
                outcome = _finish(child, job, ended, status, overdue, root, limits)
                del running[child]
                graded.append(outcome)
                bar.update(outcome, len(running))
    finally:
        for child, job in running.items():
            processes.kill_job(child, job.files.workdir.name, job.cgroup)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
            processes.remove_group(job.memory)
        shutil.rmtree(scratch, ignore_errors=True)


def prepare_machine(unsafe_no_sandbox: bool, limits: Limits, say: Callable[[str], None]) -> None:
    """The sandbox (or the refusal to grade without one), the imports every job shares, and what the
    machine cannot limit, said."""
    why = grading_sandbox.unavailable()
    if why and not unsafe_no_sandbox:
        raise LeaklabError(
            f"cannot sandbox the submissions on this machine: {why}. Fix that, or pass --unsafe-no-sandbox to "
            "grade without one (a submission's code then runs as you, and can read and change what you can)"
        )
    if why:
        say(f"warning: grading without a sandbox ({why}), as --unsafe-no-sandbox asks")
    else:
        grading_sandbox.activate(limits.tasks)  # the forked jobs inherit it
    _warm_up()
    if processes.memory_cgroup_root() is None:
        say(
            "note: no writable memory cgroup here, so memory is bounded per process (--memory), not for all of "
            "a submission's processes together (--job-memory)"
        )
    if processes.pids_cgroup_root() is None and os.geteuid() == 0 and unsafe_no_sandbox:
        say(
            "warning: no limit on the processes and threads of a submission: running as root without a "
            "sandbox or a writable pids cgroup (/sys/fs/cgroup/pids, cgroup v1), a fork or thread bomb is "
            "bounded only by the memory and time limits"
        )


def _finish(
    child: int, job: Running, ended: bool, status: int | None, overdue: bool, root: Path, limits: Limits
) -> Outcome:
    """End a job that ended or ran out of time, everything it started with it, and record its outcome."""
    outcome = _conclude(child, job, ended, status, overdue, root, limits)
    record(root, job.sub, outcome, job.files.produced)
    shutil.rmtree(job.files.workdir, ignore_errors=True)
    return outcome


def _conclude(
    child: int, job: Running, ended: bool, status: int | None, overdue: bool, root: Path, limits: Limits
) -> Outcome:
    """End a job that ended or ran out of time, everything it started with it: its outcome, unrecorded."""
    refused = processes.refused_tasks(job.cgroup)  # before kill_job removes the cgroup
    processes.kill_job(child, job.files.workdir.name, job.cgroup)
    if not ended:
        status = os.waitpid(child, 0)[1]
    timed_out = overdue and not ended and not job.graded  # graded in time, even if its page was not
    exit_code = os.waitstatus_to_exitcode(status) if status is not None else None
    memory = processes.memory_events(job.memory)
    processes.remove_group(job.memory)
    outcome = collect(job.sub, root, job.files, timed_out=timed_out, exit_code=exit_code, limits=limits, memory=memory)
    outcome.reason, outcome.detail = process_reason(outcome.reason, outcome.detail, refused, limits.tasks)
    return outcome


def grade_alone(
    sub: Submission, *, checkout: Path, root: Path, limits: Limits, workdir: Path, wanted: Callable[[], bool]
) -> tuple[Outcome, JobFiles]:
    """One submission graded as one of `grade_class`'s jobs, with the same limits, nothing recorded: a
    cluster's worker hands the outcome and the job's files (in `workdir`) back to the class's grader.
    Stopped (LeaklabError) as soon as `wanted()` says no one waits for it any more."""
    child, job = _start(sub, checkout, root, workdir, limits)
    try:
        while True:
            if not wanted():
                raise LeaklabError("no one waits for this job any more")
            ended, status = _ended(child)
            overdue = time.monotonic() - job.started > limits.seconds
            if ended or overdue:
                return _conclude(child, job, ended, status, overdue, root, limits), job.files
            time.sleep(0.05)
    except BaseException:
        processes.kill_job(child, job.files.workdir.name, job.cgroup)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
        processes.remove_group(job.memory)
        raise


def _start(sub: Submission, checkout: Path, root: Path, workdir: Path, limits: Limits) -> tuple[int, Running]:
    workdir.mkdir()
    files = JobFiles(workdir, secrets.token_hex(16))
    name = f"leaklab-{workdir.name.removeprefix('job-')}"
    cgroup, memory = processes.make_cgroup(name, limits), processes.make_memory_cgroup(name, limits)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        run_job(sub, checkout, root, files, limits, cgroup, memory)
    return child, Running(sub, files, time.monotonic(), cgroup, memory)


def _ended(child: int) -> tuple[bool, int | None]:
    pid, status = os.waitpid(child, os.WNOHANG)
    return pid == child, (status if pid == child else None)


def _stale(outcome: Outcome | None, sub: Submission) -> bool:
    return outcome is None or outcome.checksum != sub.checksum()
