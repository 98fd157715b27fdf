"""`leaklab autograde --cluster` against a real Dask cluster on loopback: a scheduler and two
single-threaded workers, each its own process with its own working folder and temp folder (no shared
temp), grade a class of honest and hostile submissions while one worker is killed (-9) halfway. The
course must end as a local run of the same class leaves it: grades.csv, the gradebook, the feedback
pages; every submission recorded once; nothing left running or lying in the workers' folders.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hostile import CORPUS, NETWORK_PORT
from local_cluster import local_cluster
from test_class_grading import (
    LIMITS,
    finish,
    graded,  # noqa: F401 (the fixture: one local run of the corpus serves both tests)
    hand_in,
    leaklab,
)

from leaklab._census import process_parents

pytestmark = pytest.mark.slow

# Honest answers and attacks that end by themselves well within the limits (none waits for a timeout).
CLASS = [
    "solution-04",
    "exercise-04",
    "no-join-04",
    "solution-01",
    "task-group-01",
    "solution-03",
    "fork-bomb",
    "escaping-children",
    "snooping",
    "course-rewrite",
    "kill-the-grader",
    "network",
    "memory-bomb",
    "output-bomb",
    "os-exit-at-top",
    "edited-test",
    "wrong-assignment",
    "invalid-json",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler on loopback and two workers of one thread each, without nannies (a killed worker
    stays dead: its jobs must be graded by the other)."""
    base = tmp_path_factory.mktemp("cluster")
    with local_cluster(base, 2, nanny=False) as running:
        yield {"address": running.address, "base": base, "scheduler": running.scheduler, "workers": running.workers}


@pytest.fixture(scope="module")
def both(cluster, graded, tmp_path_factory):  # noqa: F811 (the fixture imported above)
    """The class graded on the cluster with worker-a killed halfway, beside the same submissions graded on
    this machine (the class grading test's run of the whole corpus, with the same limits)."""
    course = tmp_path_factory.mktemp("cluster") / "course"
    assert finish(leaklab("course", str(course)))[0] == 0
    hand_in(course, {name: (CORPUS[name].assignment, CORPUS[name].build(CORPUS[name].assignment)) for name in CLASS})
    with _listener():
        remote, killed = _grade_killing_a_worker(course, cluster)
    courses = {"local": graded["course"], "cluster": course}
    return {"local": (graded["code"], graded["stderr"]), "cluster": remote, "killed": killed, "courses": courses}


@contextlib.contextmanager
def _listener():
    import socket

    with socket.socket() as listener:  # what the "network" submission tries to reach
        listener.bind(("127.0.0.1", NETWORK_PORT))
        listener.listen(16)
        yield


def _grade_killing_a_worker(course: Path, cluster: dict) -> tuple[tuple[int, str], bool]:
    """Grade on the cluster; once a third of the class is graded, kill -9 worker-a while it grades a job."""
    process = leaklab("autograde", str(course), "--cluster", str(cluster["address"]), *LIMITS)
    lines, killed = [], False
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        done = re.match(r"\[(\d+)/(\d+)\]", line)
        if done and not killed and int(done.group(1)) >= int(done.group(2)) // 3:
            worker = cluster["workers"][0]
            _wait_until_grading(worker.pid)
            worker.kill()
            worker.wait()
            killed = True
    process.wait(timeout=900)
    return (process.returncode, "".join(lines)), killed


def _wait_until_grading(pid: int) -> None:
    """Until the worker has a job's process of its own (it is mid-job)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if _children(pid):
            return
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    return [child for child, parent in process_parents(running_only=True).items() if parent == pid]


def _started_in(base: Path) -> list[int]:
    """The processes whose temp folder is one of the cluster's: its processes and all they started."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if f"TMPDIR={base}".encode() in (proc / "environ").read_bytes() and proc.name != str(os.getpid()):
                found.append(int(proc.name))
    return sorted(found)


def rows(course: Path, only: list[str] | None = None) -> dict[str, tuple]:
    """The rows of grades.csv, of the students `only` names (the local course holds the whole corpus)."""
    with (course / "leaklab" / "grades.csv").open(newline="") as table:
        found = {
            r["student"]: (r["assignment"], r["score"], r["max_score"], r["reason"]) for r in csv.DictReader(table)
        }
    return {student: row for student, row in found.items() if only is None or student in only}


def gradebook(course: Path) -> set[tuple]:
    """Every test's score per student of the class, as the formgrader reads them."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as book:
        return {
            (student.id, sub.assignment.name, grade.name, grade.auto_score)
            for student in book.students
            if student.id in CLASS
            for sub in student.submissions
            for notebook in sub.notebooks
            for grade in notebook.grades
        }


def pages(course: Path) -> dict[str, list[str]]:
    """Each feedback page's scores, as the class's students read them."""
    found = {}
    for page in sorted((course / "feedback").rglob("*.html")):
        if page.relative_to(course / "feedback").parts[0] not in CLASS:
            continue
        found[page.relative_to(course).as_posix()] = re.findall(r"Score: [\d.]+ / [\d.]+", page.read_text())
    return found


def test_a_worker_was_killed_mid_job_and_the_run_still_graded_every_submission(both):
    assert both["killed"]
    code, stderr = both["cluster"]
    assert f"[{len(CLASS)}/{len(CLASS)}]" in stderr, stderr[-3000:]
    assert code == both["local"][0] == 1  # some submissions have a reason, in both
    assert "could not be graded on the cluster" not in stderr


def test_grades_csv_equals_the_local_runs(both):
    assert rows(both["courses"]["cluster"]) == rows(both["courses"]["local"], CLASS)
    assert sorted(rows(both["courses"]["cluster"])) == sorted(CLASS)


def test_the_gradebook_equals_the_local_runs(both):
    assert gradebook(both["courses"]["cluster"]) == gradebook(both["courses"]["local"]) != set()


def test_the_feedback_pages_equal_the_local_runs(both):
    """But for a submission over its memory: which of its processes the OOM killer ends first (the kernel,
    and with it the page, or the grader's run) depends on timing, on a cluster as on this machine."""
    over = {student for student, row in rows(both["courses"]["local"], CLASS).items() if row[3] == "memory limit"}
    cluster, local = (
        {p: s for p, s in pages(both["courses"][w]).items() if p.split("/")[1] not in over}
        for w in ("cluster", "local")
    )
    assert cluster == local
    assert {"solution-01", "solution-03", "solution-04", "snooping"} <= {page.split("/")[1] for page in cluster}


def test_no_submission_is_recorded_twice(both):
    ledger = (both["courses"]["cluster"] / "leaklab" / "grades.jsonl").read_text().splitlines()
    students = [json.loads(line)["student"] for line in ledger]
    assert sorted(students) == sorted(CLASS)


def test_nothing_is_left_running_or_lying_in_the_workers_folders(both, cluster):
    """Not even of the killed worker's job: its process saw the worker go, stopped and cleaned up."""
    assert _started_in(cluster["base"]) == sorted([cluster["scheduler"].pid, cluster["workers"][1].pid])
    for name in ("worker-a", "worker-b"):
        left = [p.name for p in (cluster["base"] / name / "tmp").iterdir()]
        assert left == [], name


def test_a_worker_with_another_leaklab_refuses_the_class(cluster, tmp_path, monkeypatch):
    """The fingerprint travels with each job: a worker whose grader differs says so, and nothing is recorded."""
    course = tmp_path / "course"
    assert finish(leaklab("course", str(course)))[0] == 0
    hand_in(
        course,
        {
            "solution-01": (
                CORPUS["solution-01"].assignment,
                CORPUS["solution-01"].build(CORPUS["solution-01"].assignment),
            )
        },
    )
    lock = course / "fake-checkout"
    shutil.copytree(Path(__file__).resolve().parents[2] / "grader", lock / "grader")
    (lock / "notebooks").mkdir()
    (lock / "requirements.lock").write_text("another-package==1\n")
    code, stderr = finish(
        leaklab("autograde", str(course), "--cluster", str(cluster["address"]), "--course", str(lock))
    )
    assert code == 2 and "runs another leaklab than the grader's" in stderr, stderr[-2000:]
    assert not (course / "leaklab" / "grades.jsonl").exists()


def _small_class(tmp_path: Path, names: list[str]) -> Path:
    course = tmp_path / "course"
    assert finish(leaklab("course", str(course)))[0] == 0
    hand_in(course, {name: (CORPUS[name].assignment, CORPUS[name].build(CORPUS[name].assignment)) for name in names})
    return course


def _expected(names: list[str]) -> dict[str, tuple[str, str]]:
    return {name: (f"{CORPUS[name].score:g}", CORPUS[name].reason) for name in names}


def _read_until(process: subprocess.Popen, words: str) -> list[str]:
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if words in line:
            return lines
    raise AssertionError("".join(lines))


def test_a_worker_that_joins_late_takes_the_jobs_that_waited(tmp_path):
    names = ["solution-01", "exercise-01", "invalid-json"]
    course = _small_class(tmp_path, names)
    with local_cluster(tmp_path / "cluster", 0) as late:
        process = leaklab("autograde", str(course), "--cluster", str(late.address), *LIMITS)
        said = _read_until(process, "no worker has joined the cluster yet")
        late.add_worker()
        code, stderr = finish(process, timeout=300)
    assert code == 1 and f"[{len(names)}/{len(names)}]" in stderr, "".join(said) + stderr
    assert {s: (row[1], row[3]) for s, row in rows(course).items()} == _expected(names)


def test_a_restarted_scheduler_loses_no_grade_and_records_none_twice(tmp_path):
    """The scheduler and its workers killed after the first grade, then started again at the same
    address (as a batch system or Kubernetes restarts them): the jobs they lost are sent again."""
    names = ["solution-01", "task-group-01", "exercise-03", "solution-04", "no-join-04"]
    course = _small_class(tmp_path, names)
    with local_cluster(tmp_path / "cluster", 2, nanny=False) as restarted:
        process = leaklab("autograde", str(course), "--cluster", str(restarted.address), *LIMITS)
        said = _read_until(process, f"[1/{len(names)}]")
        assert restarted.scheduler is not None
        for gone in (restarted.scheduler, *restarted.workers):
            gone.kill()
            gone.wait()
        restarted.start_scheduler()
        restarted.add_worker()
        restarted.add_worker()
        code, stderr = finish(process, timeout=300)
    assert code == 0 and f"[{len(names)}/{len(names)}]" in stderr, "".join(said) + stderr
    assert "the scheduler lost the jobs in flight" in stderr
    assert {s: (row[1], row[3]) for s, row in rows(course).items()} == _expected(names)
    ledger = (course / "leaklab" / "grades.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["student"] for line in ledger) == sorted(names)
