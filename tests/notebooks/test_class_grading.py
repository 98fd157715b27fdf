"""`leaklab autograde` end to end: a course from `leaklab course`, the hostile corpus of tests/hostile.py
handed in as submitted/<student>/<assignment>/, graded by ONE run with short limits, then checked
submission by submission (grades.csv, nbgrader's gradebook, feedback pages), for leftover processes,
and for resumability (a second run, a lost ledger line, --force, an interrupted run).

The tests of this file share the module's course and run in file order: the resumability tests build
on the first run.
"""

from __future__ import annotations

import contextlib
import csv
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile import CANCEL, CORPUS, HUNG, NETWORK_PORT, POOL, answer, answers_04, copy_of

from leaklab.grading.classroom.processes import memory_cgroup_root

ROOT = Path(__file__).resolve().parents[2]
# Short limits, so that CI stays fast: an isolated run is never given under 11 s (the child's own
# budgets), a cell 10 s (the lessons' cells take well under a second there), 3 GiB per process, and
# 1.5 GiB per submission (every solution's job holds under 1 GiB): a bomb meets the OOM killer early.
# A quarter of the default task cap, so that a fork bomb reaches it well inside the cell's 10 s however
# loaded the machine (a fork of a kernel takes milliseconds, ten times that under load).
LIMITS = ["--cell-timeout", "10", "--run-timeout", "11", "--timeout", "120", "--memory", "3", "--job-memory", "1.5"]
LIMITS += ["--tasks", "256"]
JOBS = ["--jobs", "2"]
# Without a writable memory cgroup, memory is bounded per process only: children under that limit pass.
PER_PROCESS_MEMORY_ONLY = memory_cgroup_root() is None
HIDDEN = ("BEGIN HIDDEN TESTS", "jobs=50, batches=8", "traffic=")  # only in hidden tests
NOT_IN_A_KERNEL = {"timeout", "memory limit", "process limit", "output limit", "unreadable", "wrong assignment"}


def leaklab(*args: str, no_cgroup: bool = False) -> subprocess.Popen:
    """The command line, started; `no_cgroup` hides the pids cgroup, as on a machine without one."""
    code = "import sys; from leaklab._cli import main; sys.exit(main(sys.argv[1:]))"
    if no_cgroup:
        code = "import leaklab.grading.classroom.processes as p; p.pids_cgroup_root = lambda: None; " + code
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell starts background jobs with Ctrl-C ignored, and Python then never turns it into
        # KeyboardInterrupt: give the command Ctrl-C back, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def finish(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def hand_in(course: Path, submissions: dict[str, tuple[str, bytes]]) -> None:
    for student, (assignment, data) in submissions.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{assignment}.ipynb").write_bytes(data)


def table(course: Path) -> dict[str, dict]:
    with (course / "leaklab" / "grades.csv").open(newline="") as rows:
        return {row["student"]: row for row in csv.DictReader(rows)}


def ledger_lines(course: Path) -> list[str]:
    return (course / "leaklab" / "grades.jsonl").read_text().splitlines()


def survivors(grader_pid: int) -> list[int]:
    """Processes still marked as started by a job of that grader (see `grading.classroom.processes.JOB_ENV`)."""
    marker = f"LEAKLAB_JOB=job-{grader_pid}-".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(v.startswith(marker) for v in (proc / "environ").read_bytes().split(b"\0")):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """The corpus, handed in to a fresh course and graded once (the cluster test compares its class with
    this run: one local run of the corpus serves both)."""
    course = tmp_path_factory.mktemp("class") / "course"
    assert finish(leaklab("course", str(course)))[0] == 0
    hand_in(course, {name: (case.assignment, case.build(case.assignment)) for name, case in CORPUS.items()})
    with socket.socket() as listener:  # what the "network" submission tries to reach
        listener.bind(("127.0.0.1", NETWORK_PORT))
        listener.listen(16)
        listener.setblocking(False)
        started = time.monotonic()
        process = leaklab("autograde", str(course), *JOBS, *LIMITS)
        code, stderr = finish(process)
        seconds = time.monotonic() - started
        reached = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                listener.accept()[0].close()
                reached += 1
    print(f"\nthe corpus ({len(CORPUS)} submissions) graded in {seconds:.0f} s")
    return {
        "course": course,
        "code": code,
        "stderr": stderr,
        "seconds": seconds,
        "pid": process.pid,
        "reached": reached,
    }


def printed(course: Path, student: str) -> str:
    """Everything the kernel printed for a student's notebook, as the autograded notebook keeps it."""
    nb = json.loads((course / "autograded" / student / POOL / f"{POOL}.ipynb").read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))


def test_the_run_ends_in_time_and_says_how_many_were_not_graded_normally(graded):
    odd = sum(1 for case in CORPUS.values() if case.reason)
    assert graded["code"] == 1, graded["stderr"][-3000:]
    assert f"{odd} of {len(CORPUS)} could not be graded normally" in graded["stderr"]
    assert f"[{len(CORPUS)}/{len(CORPUS)}]" in graded["stderr"]
    assert graded["seconds"] < 420  # ~3 min on an idle 2-core machine; the limits bound each submission


@pytest.mark.parametrize("name", CORPUS)
def test_each_submission_gets_its_score_and_reason(graded, name):
    row, case = table(graded["course"])[name], CORPUS[name]
    if name == "memory-across-processes" and PER_PROCESS_MEMORY_ONLY:
        assert (float(row["score"]), row["reason"]) == (case.score, "")
    else:
        assert (float(row["score"]), row["reason"]) == (case.score, case.reason), (case.why, row["detail"])
    assert row["assignment"] == case.assignment and row["notebook"] == f"{case.assignment}.ipynb"
    assert float(row["max_score"]) == 9
    assert bool(row["detail"]) == bool(row["reason"])


def test_no_hidden_test_reaches_the_kernel_or_what_the_course_keeps_of_it(graded):
    course = graded["course"]
    assert "SPY: " in printed(course, "cell-spy") and "hidden_part(" in printed(course, "cell-spy")
    for name, case in CORPUS.items():
        notebook = course / "autograded" / name / case.assignment / f"{case.assignment}.ipynb"
        if notebook.exists():
            assert not any(words in notebook.read_text() for words in HIDDEN), name


def test_the_sandbox_hides_the_lessons_the_solutions_and_the_course(graded):
    assert "SNOOPED: nothing" in printed(graded["course"], "snooping")


def test_the_worked_solutions_ran_without_an_error_in_their_sandboxed_kernels(graded):
    """Their plots and memray captures, shown on the feedback page, need nothing the sandbox hides."""
    for student, lesson in (("solution-01", CANCEL), ("solution-03", HUNG), ("solution-04", POOL)):
        nb = json.loads((graded["course"] / "autograded" / student / lesson / f"{lesson}.ipynb").read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert errors == [], student


def test_the_kernels_outputs_are_kept_to_size(graded):
    course = graded["course"]
    autograded = course / "autograded" / "kernel-output-bomb" / POOL / f"{POOL}.ipynb"
    page = course / "feedback" / "kernel-output-bomb" / POOL / f"{POOL}.html"
    assert autograded.stat().st_size < 2 * 2**20 and page.stat().st_size < 4 * 2**20
    assert "output cut at" in printed(course, "kernel-output-bomb")
    assert "left out" in printed(course, "kernel-output-bomb")


def test_the_sandbox_lets_nothing_out(graded):
    assert "NETWORK: ConnectionRefusedError" in printed(graded["course"], "network")
    assert graded["reached"] == 0


def test_one_row_per_student_and_notebook(graded):
    with (graded["course"] / "leaklab" / "grades.csv").open(newline="") as rows:
        lines = list(csv.reader(rows))
    assert lines[0] == ["student", "assignment", "notebook", "score", "max_score", "reason", "detail"]
    assert sorted(line[0] for line in lines[1:]) == sorted(CORPUS)


def test_the_gradebook_agrees_as_nbgrader_export_sees_it(graded):
    course = graded["course"]
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", "--to", "export.csv"],
        cwd=course,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with (course / "export.csv").open(newline="") as rows:
        exported = {(r["student_id"], r["assignment"]): float(r["score"]) for r in csv.DictReader(rows)}
    for name, case in CORPUS.items():
        assert exported[name, case.assignment] == case.score, name


def test_feedback_is_written_without_hidden_tests(graded):
    feedback = graded["course"] / "feedback"
    for name, case in CORPUS.items():
        page = feedback / name / case.assignment / f"{case.assignment}.html"
        if case.reason in NOT_IN_A_KERNEL:
            continue  # no kernel ran it: its reason is in grades.csv and the gradebook's comment
        if case.reason in ("", "tampered", "answer failed"):
            assert page.exists(), name
        if page.exists():
            html = page.read_text()
            assert not any(words in html for words in HIDDEN), name
    solution = (feedback / "solution-04" / POOL / f"{POOL}.html").read_text()
    # Its kernel showed each figure as data; the job drew them all, with the matplotlib its parent loaded.
    figures = (ROOT / "solutions" / f"{POOL}.ipynb").read_text().count("leaklab.plot_runs(")
    assert figures and solution.count("data:image/png") == figures and "[leaklab: a figure" not in solution


def test_no_process_of_any_job_survives(graded):
    assert survivors(graded["pid"]) == []
    cgroups = Path("/sys/fs/cgroup/pids")
    assert not list(cgroups.glob(f"leaklab-{graded['pid']}-*"))


def test_a_second_run_grades_nothing(graded):
    before = ledger_lines(graded["course"])
    code, stderr = finish(leaklab("autograde", str(graded["course"]), *JOBS, *LIMITS))
    assert code == 0 and "nothing to grade" in stderr
    assert ledger_lines(graded["course"]) == before


def test_a_lost_ledger_line_is_graded_again_and_nothing_else(graded):
    course = graded["course"]
    lines = ledger_lines(course)
    lost = next(line for line in lines if json.loads(line)["student"] == "solution-03")
    (course / "leaklab" / "grades.jsonl").write_text("".join(f"{line}\n" for line in lines if line != lost))
    code, stderr = finish(leaklab("autograde", str(course), *JOBS, *LIMITS))
    assert code == 0 and "grading 1 submission (" in stderr and "solution-03" in stderr
    assert len(ledger_lines(course)) == len(lines)
    assert float(table(course)["solution-03"]["score"]) == 9


def test_force_grades_again(graded):
    course = graded["course"]
    before = len(ledger_lines(course))
    code, stderr = finish(leaklab("autograde", str(course), "03_hung_call", "--force", *JOBS, *LIMITS))
    again = [name for name, case in CORPUS.items() if case.assignment == "03_hung_call"]
    odd = any(CORPUS[name].reason for name in again)  # sys-exit-03: the exit code says so
    assert code == int(odd) and f"grading {len(again)} submissions" in stderr
    assert len(ledger_lines(course)) == before + len(again)
    rows = table(course)
    assert all(float(rows[name]["score"]) == CORPUS[name].score for name in again)


def test_an_interrupted_run_keeps_what_it_wrote_without_a_cgroup(tmp_path):
    """Ctrl-C after the first outcome: nothing written is lost, no process is left, and the next run
    grades only the rest. The pids cgroup is hidden: the clean-up falls back to the job's marker."""
    course = tmp_path / "course"
    assert finish(leaklab("course", str(course)))[0] == 0
    escaping = CORPUS["escaping-children"]
    hand_in(
        course,
        {
            "a-escaping": (POOL, escaping.build(POOL)),
            "b-solution": (POOL, copy_of("solutions")(POOL)),
            "c-no-join": (POOL, answer(answers_04.NO_JOIN)(POOL)),
            "d-exercise": (POOL, copy_of("exercises")(POOL)),
        },
    )
    expected = {"a-escaping": 7.0, "b-solution": 9.0, "c-no-join": 2.0, "d-exercise": 0.0}
    process = leaklab("autograde", str(course), "--jobs", "1", *LIMITS, no_cgroup=True)
    ledger = course / "leaklab" / "grades.jsonl"
    deadline = time.monotonic() + 120
    while not (ledger.exists() and ledger.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    code, stderr = finish(process, timeout=60)
    assert code == 130 and "interrupted" in stderr
    assert "no limit on the processes and threads" not in stderr  # each sandbox holds its own to a cap
    assert survivors(process.pid) == []
    written = {json.loads(line)["student"]: json.loads(line)["score"] for line in ledger_lines(course)}
    assert 1 <= len(written) < len(expected)
    assert {name: float(row["score"]) for name, row in table(course).items()} == written  # the CSV too

    again = leaklab("autograde", str(course), *JOBS, *LIMITS, no_cgroup=True)
    code, stderr = finish(again)
    todo = len(expected) - len(written)
    assert code == 0 and f"grading {todo} submission{'s' if todo > 1 else ''} ({len(written)} already" in stderr
    assert survivors(again.pid) == []
    assert {name: float(row["score"]) for name, row in table(course).items()} == expected
