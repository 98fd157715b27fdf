"""Runs the class's jobs, `jobs` at a time, each in a forked process with its limits, and records each
outcome as its job ends; interrupted, it kills the running jobs and keeps everything already written."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..._errors import LeaklabError
from .. import sandbox as grading_sandbox
from ..settings import Limits
from . import processes
from .discovery import Submission, find_submissions
from .job import JobFiles, collect, run_job
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
    """What one run of the class grader did: every outcome in the ledger, and those graded this time."""

    outcomes: dict[tuple[str, str], Outcome]
    graded: list[Outcome]


def _warm_up() -> None:
    """Imported once here, so that every forked job starts warm: nbgrader's apps, autograde and feedback."""
    import nbgrader.apps
    import nbgrader.converters  # noqa: F401
    from nbconvert.exporters import HTMLExporter

    HTMLExporter().template  # noqa: B018 - the feedback page's templates, loaded once (~0.3 s a job)


def grade_class(
    root: Path,
    *,
    checkout: Path,
    assignments: list[str] | None = None,
    jobs: int | None = None,
    force: bool = False,
    limits: Limits | None = None,
    unsafe_no_sandbox: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ClassRun:
    """Grade every submission not yet graded (all with `force`), `jobs` at a time, each job's learner code
    in a sandbox; where the machine cannot make one, only with `unsafe_no_sandbox`."""
    root, limits = root.resolve(), limits or Limits()
    submissions = find_submissions(root, assignments)
    ledger = read_ledger(root)
    todo = [s for s in submissions if force or _stale(ledger.get((s.student, s.assignment)), s)]
    say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    if not todo:
        say(f"nothing to grade: {len(submissions)} submissions already graded (--force grades them again)")
        return ClassRun(ledger, [])
    _prepare_machine(unsafe_no_sandbox, limits, say)
    jobs = max(1, jobs or os.cpu_count() or 1)
    say(f"grading {len(todo)} submissions ({len(submissions) - len(todo)} already graded), {jobs} at a time")
    bar = Progress(len(todo), progress)
    graded: list[Outcome] = []
    # Outside the course: the path of a job's folder (which its kernel is shown) says nothing of where
    # the gradebook and the ledger are.
    scratch = Path(tempfile.mkdtemp(prefix="leaklab-class-"))
    running: dict[int, Running] = {}
    try:
        queue, number = list(reversed(todo)), 0
        while queue or running:
            while queue and sum(not job.graded for job in running.values()) < jobs:
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
                ledger[job.sub.student, job.sub.assignment] = outcome
                graded.append(outcome)
                bar.update(outcome, len(running))
    finally:
        for child, job in running.items():
            processes.kill_job(child, job.files.workdir.name, job.cgroup)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
            processes.remove_group(job.memory)
        shutil.rmtree(scratch, ignore_errors=True)
        # From the ledger on disk: a Ctrl-C just after a job's ledger line was written, before this loop
        # took its outcome in, must not leave that line out of the table.
        ledger = read_ledger(root)
        if ledger:
            write_table(root, ledger)
    return ClassRun(ledger, graded)


def _prepare_machine(unsafe_no_sandbox: bool, limits: Limits, say: Callable[[str], None]) -> None:
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
    processes.kill_job(child, job.files.workdir.name, job.cgroup)
    if not ended:
        status = os.waitpid(child, 0)[1]
    timed_out = overdue and not ended and not job.graded  # graded in time, even if its page was not
    exit_code = os.waitstatus_to_exitcode(status) if status is not None else None
    memory = processes.memory_events(job.memory)
    processes.remove_group(job.memory)
    outcome = collect(job.sub, root, job.files, timed_out=timed_out, exit_code=exit_code, limits=limits, memory=memory)
    record(root, job.sub, outcome, {"autograded": job.files.autograded, "feedback": job.files.feedback})
    shutil.rmtree(job.files.workdir, ignore_errors=True)
    return outcome


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
