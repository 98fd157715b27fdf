"""`leaklab autograde --cluster`: the class's jobs on the workers of a Dask cluster.

The class's grader keeps the course: it finds the submissions, and writes the gradebook, autograded/,
feedback/ and the ledger from what comes back, once per submission. A job travels to a worker as bytes
(the notebook, the lesson's authored source and release: no shared file system), and on the worker it
runs in a process of its own (`python -m leaklab.grading.classroom.cluster FOLDER`), which grades it
exactly as a local job (`scheduler.grade_alone`: the same fork, limits and sandbox); a Dask worker runs
its tasks in threads, and a threaded process must not fork. That process dies with its worker: it
watches a pipe only the worker holds.

A worker killed mid-job loses nothing: the scheduler hands the job to another worker, and only the
result that reaches this process is recorded. A job that a restarted scheduler forgot is sent again; one
whose workers keep dying (Dask's allowed-failures), or that was lost too often, is left for the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..._errors import LeaklabError
from ..results import Reason
from ..settings import Limits
from .discovery import Submission, course_assignments, release_of, source_of
from .job import empty_outcome
from .records import Outcome, record

if TYPE_CHECKING:
    from distributed import Client, Future

    from .scheduler import Progress

TRIES = 3  # a job whose result never came back (its scheduler restarted) is sent again, this many times in all


def fingerprint(checkout: Path) -> str:
    """What decides a grade besides the lesson: the grader's code, its nbgrader config and the pinned
    packages. A worker whose own differs would grade differently, so it refuses the job."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[2]  # the leaklab package
    files = {str(p.relative_to(package)): p for p in sorted(package.rglob("*.py"))}
    files.update({name: checkout / name for name in ("grader/nbgrader_config.py", "requirements.lock")})
    for name, path in files.items():
        digest.update(name.encode())
        with contextlib.suppress(OSError):
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Parcel:
    """One job, as it travels to a worker."""

    student: str
    assignment: str
    notebook: bytes | None  # None: the submission's folder holds no notebook
    source: bytes
    release: bytes
    assignments: tuple[str, ...]  # the course's, so that another lesson's notebook is named as such
    limits: Limits
    unsafe_no_sandbox: bool
    fingerprint: str


@dataclass(frozen=True)
class Returned:
    """A graded job, as it travels back: the outcome, and the files the course keeps of it."""

    outcome: dict
    autograded: bytes | None
    feedback: bytes | None
    worker: str  # host:pid
    notes: tuple[str, ...] = ()  # what the worker's machine cannot limit, as a local run says it


class WorkerCannotGrade(LeaklabError):
    """The worker cannot grade at all (another leaklab, no sandbox): nothing to do with the submission."""


def grade_parcel(parcel: Parcel) -> Returned:
    """On a worker: lay the job out as a one-submission course in a private folder and grade it there."""
    from ..._repo import find_checkout

    where = f"{socket.gethostname()}:{os.getpid()}"
    checkout = find_checkout(None)
    if fingerprint(checkout) != parcel.fingerprint:
        raise WorkerCannotGrade(
            f"worker {where} runs another leaklab than the grader's ({fingerprint(checkout)} against "
            f"{parcel.fingerprint}): install the same checkout and requirements.lock on every worker"
        )
    folder = Path(tempfile.mkdtemp(prefix="leaklab-parcel-"))
    try:
        root = folder / "course"
        for name in parcel.assignments:
            (root / "source" / name).mkdir(parents=True)
        sub = Submission(parcel.student, parcel.assignment, _notebook_in(root, parcel.student, parcel.assignment))
        sub.path.parent.mkdir(parents=True)
        if parcel.notebook is not None:
            sub.path.write_bytes(parcel.notebook)
        source_of(root, parcel.assignment).write_bytes(parcel.source)
        release_of(root, parcel.assignment).parent.mkdir(parents=True)
        release_of(root, parcel.assignment).write_bytes(parcel.release)
        order = {**asdict(parcel), "limits": asdict(parcel.limits)}
        for big in ("notebook", "source", "release"):
            del order[big]
        (folder / "order.json").write_text(json.dumps(order), encoding="utf-8")
        _run_job_process(folder, checkout)
        back = json.loads((folder / "returned.json").read_text(encoding="utf-8"))
        out = folder / "out"
        files = {name: (out / name).read_bytes() if (out / name).exists() else None for name in ("nb", "html")}
        notes = (folder / "runner.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return Returned(back, files["nb"], files["html"], where, tuple(notes[:5]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _notebook_in(root: Path, student: str, assignment: str) -> Path:
    return root / "submitted" / student / assignment / f"{assignment}.ipynb"


def _run_job_process(folder: Path, checkout: Path) -> None:
    """The job's own process; its stdin is the lifeline (closed when this worker dies, however)."""
    (folder / "tmp").mkdir()  # what the job leaves behind, even killed, goes with the folder
    env = {**os.environ, "LEAKLAB_ARTEFACTS": str(folder / "artefacts"), "TMPDIR": str(folder / "tmp")}
    with (folder / "runner.log").open("wb") as log:
        runner = subprocess.Popen(
            [sys.executable, "-m", __name__, str(folder)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=checkout,
            env=env,
        )
        try:
            code = runner.wait()
        finally:
            if runner.stdin:
                runner.stdin.close()
            if runner.poll() is None:
                runner.kill()
                runner.wait()
    if code != 0:
        said = (folder / "runner.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        last = said[-1] if said else f"exit code {code}"
        kind = WorkerCannotGrade if code == 2 else LeaklabError
        raise kind(f"worker {socket.gethostname()}: {last}")


def _job_process(folder: Path) -> int:
    """`python -m leaklab.grading.classroom.cluster FOLDER`: grade the folder's job, as a local job."""
    from ..._repo import find_checkout
    from . import scheduler

    order = json.loads((folder / "order.json").read_text(encoding="utf-8"))
    limits = Limits(**order["limits"])
    root = folder / "course"
    sub = Submission(order["student"], order["assignment"], _notebook_in(root, order["student"], order["assignment"]))
    try:
        scheduler.prepare_machine(order["unsafe_no_sandbox"], limits, lambda text: print(text, flush=True))
    except LeaklabError as exc:
        print(exc, flush=True)
        return 2

    def wanted() -> bool:  # the worker still holds the pipe: it never writes, so readable means closed
        return not select.select([sys.stdin], [], [], 0)[0]

    try:
        outcome, files = scheduler.grade_alone(
            sub, checkout=find_checkout(None), root=root, limits=limits, workdir=folder / f"job-{os.getpid()}-1",
            wanted=wanted,
        )  # fmt: skip
    except LeaklabError:  # its worker died: the job is stopped, and no one else will remove the folder
        shutil.rmtree(folder, ignore_errors=True)
        return 3
    (folder / "out").mkdir()
    for made, name in ((files.autograded, "nb"), (files.feedback, "html")):
        if made.exists():
            shutil.copyfile(made, folder / "out" / name)
    (folder / "returned.json").write_text(json.dumps(outcome.to_json()), encoding="utf-8")
    return 0


def grade_on_cluster(
    address: str,
    todo: list[Submission],
    *,
    root: Path,
    checkout: Path,
    limits: Limits,
    unsafe_no_sandbox: bool,
    bar: Progress,
    graded: list[Outcome],
    say: Callable[[str], None],
) -> list[Submission]:
    """Grade `todo` on the cluster at `address` (or described by a scheduler file), recording each
    outcome as it comes back (into `graded` too); returns the submissions left for the next run."""
    from concurrent.futures import CancelledError

    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    mine = fingerprint(checkout)
    assignments = tuple(course_assignments(root))
    lessons = {
        a: (source_of(root, a).read_bytes(), release_of(root, a).read_bytes()) for a in {s.assignment for s in todo}
    }
    client = _connect(address)
    if not client.nthreads():
        say("no worker has joined the cluster yet: the jobs wait for one")
    scratch = Path(tempfile.mkdtemp(prefix="leaklab-returned-"))
    queue: deque[Submission] = deque(todo)
    tries = {(sub.student, sub.assignment): 0 for sub in todo}
    flying: dict[str, tuple[Submission, Future]] = {}  # by the future's key
    left: list[Submission] = []
    results = as_completed(loop=client.loop)

    def send(sub: Submission) -> None:
        try:
            notebook: bytes | None = sub.path.read_bytes()
        except FileNotFoundError:
            notebook = None  # graded as missing on the worker, as a local job finds it
        except OSError:
            notebook = b""  # graded as unreadable
        source, release = lessons[sub.assignment]
        parcel = Parcel(
            sub.student, sub.assignment, notebook, source, release, assignments, limits, unsafe_no_sandbox, mine
        )
        key = f"leaklab-{sub.assignment}-{sub.student}-{uuid.uuid4().hex[:8]}"
        future = client.submit(grade_parcel, parcel, key=key, pure=False)
        tries[sub.student, sub.assignment] += 1
        flying[future.key] = (sub, future)
        results.add(future)

    threads = [1]  # the workers' threads, as last heard from the scheduler

    def top_up() -> None:  # twice the workers' threads in flight: a worker never waits for its next job
        with contextlib.suppress(OSError):  # the scheduler is away: go on with what it said last
            threads[0] = sum(client.nthreads().values())
        while queue and len(flying) < max(2, 2 * threads[0]):
            send(queue.popleft())

    lost = False  # said that the scheduler lost the jobs in flight, and none has come back since
    heard: set[tuple[str, str]] = set()  # the workers' notes said so far, by machine
    try:
        top_up()
        for future in results:
            sub = flying.pop(future.key)[0]
            try:
                returned: Returned = future.result()
            except WorkerCannotGrade as exc:
                raise LeaklabError(str(exc)) from None
            except (KilledWorker, CancelledError, OSError) as exc:
                if isinstance(exc, CancelledError) and not lost:  # the scheduler went away, or was restarted
                    say("the scheduler lost the jobs in flight (restarted?): they are sent again once it is back")
                lost = isinstance(exc, CancelledError)
                # KilledWorker: the scheduler already gave it to other workers (allowed-failures), in vain
                if not isinstance(exc, KilledWorker) and tries[sub.student, sub.assignment] < TRIES:
                    queue.appendleft(sub)
                else:
                    left.append(sub)
                    say(f"not graded this run: {sub.student} {sub.assignment} ({type(exc).__name__}: {exc})"[:300])
            except Exception as exc:  # the job's own machinery failed for this submission: recorded, as locally
                outcome = empty_outcome(sub, root)
                outcome.reason, outcome.detail = Reason.GRADER_CRASHED, f"{type(exc).__name__}: {exc}"[:300]
                _record(root, sub, outcome, None, scratch, bar, graded, len(flying))
            else:
                lost = False
                host = returned.worker.split(":")[0]
                for note in returned.notes:  # once per machine and note
                    if (host, note) not in heard:
                        heard.add((host, note))
                        say(f"worker on {host}: {note}")
                outcome = Outcome.from_json(returned.outcome)
                _record(root, sub, outcome, returned, scratch, bar, graded, len(flying))
            top_up()
    finally:
        with contextlib.suppress(Exception):  # Ctrl-C, or the scheduler gone: the ledger has what came back
            client.cancel([future for _, future in flying.values()])
            client.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return left


def _record(
    root: Path,
    sub: Submission,
    outcome: Outcome,
    returned: Returned | None,
    scratch: Path,
    bar: Progress,
    graded: list[Outcome],
    flying: int,
) -> None:
    """Into the course, as a local job's outcome is: the files the worker sent back, then the ledger."""
    produced = {}
    if returned is not None:
        for folder, data in (("autograded", returned.autograded), ("feedback", returned.feedback)):
            if data is not None:
                produced[folder] = scratch / folder
                produced[folder].write_bytes(data)
    record(root, sub, outcome, produced)
    graded.append(outcome)
    bar.update(outcome, flying)


def _connect(address: str) -> Client:
    """A client of the scheduler at `address` (tcp://host:port), or of the one a scheduler file names."""
    from distributed import Client

    if not Path(address).is_file() and not re.fullmatch(r"(\w+://)?(\[[0-9a-fA-F:]+\]|[\w.-]+):\d+", address):
        raise LeaklabError(
            f"--cluster {address}: neither a scheduler's address (tcp://host:8786) nor a scheduler file that exists"
        )
    try:
        if Path(address).is_file():
            return Client(scheduler_file=address, timeout=30, set_as_default=False)
        return Client(address, timeout=30, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise LeaklabError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


if __name__ == "__main__":
    sys.exit(_job_process(Path(sys.argv[1])))
