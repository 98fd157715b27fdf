"""A workshop on a real JupyterHub: the hub from PyPI and its proxy from npm, started from the shipped
grader/hub/jupyterhub_config.py, with real Unix users logging in through PAM. The instructor makes the
course and releases lesson 01, two students fetch it, one hands in the reference fix and one the untouched
exercise, the instructor collects and grades them: full marks and zero. Then the hub is stopped and
nothing of the class may be left: no process of its users, nothing listening on its ports, no user, no
home, no temp folder, and every folder's mode as it was.

The class runs once, in a module fixture, to its very end (clean-up included); the tests then check what
it recorded. `make hub` runs them (as root; otherwise it says why not). About a minute on a 2-core machine.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pwd
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hub_support import (
    COURSE_ID,
    INSTRUCTOR,
    JOURNAL,
    MACHINE,
    ROOT,
    SLUG,
    STUDENTS,
    WORK,
    Classroom,
    Hub,
    Person,
    Unavailable,
    classroom,
    files_of,
    left_after,
    preflight,
    processes_of,
    start_hub,
    user_exists,
)

pytestmark = pytest.mark.hub

FULL, NONE = "llhub-ana", "llhub-ben"  # who hands in the reference fix, who the exercise as released
MAX_SCORE = 9.0
EXPECTED = {FULL: (MAX_SCORE, MAX_SCORE), NONE: (0.0, MAX_SCORE)}
NOTEBOOK = f"{SLUG}/{SLUG}.ipynb"  # where nbgrader's fetch puts it, under the student's home
USERS = [INSTRUCTOR, *STUDENTS]

Scores = dict[str, tuple[float, float]]


@dataclass
class Record:
    """What the class left to check: the grades as each tool shows them, and the machine after it."""

    leaklab_table: Scores = field(default_factory=dict)  # leaklab/grades.csv
    exported: Scores = field(default_factory=dict)  # `nbgrader export`'s grades.csv, from the gradebook
    formgrader: Scores = field(default_factory=dict)  # formgrader's list of submissions
    hub_exit: int | None = None
    processes_after_stop: list[int] = field(default_factory=list)
    listening_after_stop: list[str] = field(default_factory=list)
    files_after_stop: list[str] = field(default_factory=list)  # the users' files in /tmp and the like
    homes: list[str] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=dict)  # folders the test opened, with their original modes
    temp: str = ""
    steps: list[tuple[str, float]] = field(default_factory=list)  # seconds since the start, per step

    def step(self, started: float, name: str) -> None:
        """Note when a step ended (written to .leaklab/hub/timings.txt)."""
        self.steps.append((name, time.monotonic() - started))


def status_of(listing: dict, assignment: str) -> set[str]:
    """The states (released, fetched, submitted) the Assignments tab shows for one assignment."""
    assert listing["success"], listing
    return {item["status"] for item in listing["value"] if item["assignment_id"] == assignment}


def scores_in_csv(text: str, *, student: str = "student", score: str = "score") -> Scores:
    """Student -> (score, max score) for lesson 01, from a grades table."""
    rows = csv.DictReader(io.StringIO(text))
    return {row[student]: (float(row[score]), float(row["max_score"])) for row in rows if row["assignment"] == SLUG}


def servers_ports(users: list[str]) -> set[int]:
    """The TCP ports the users' processes listen on (their single-user servers, kernels, terminals)."""
    import psutil

    pids = set(processes_of(users))
    return {
        conn.laddr.port
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids
    }


def run_the_class(room: Classroom, hub: Hub, record: Record, step: Callable[[str], None]) -> None:
    """Everything a workshop does, in the order it does it, each step checked where a person would see it."""
    people = {name: Person(hub, name, room.passwords[name]) for name in USERS}
    teacher = people[INSTRUCTOR]

    # PAM really checks: a wrong password is refused, the right one accepted.
    assert not Person(hub, FULL, "not-" + room.passwords[FULL]).log_in(), "the hub accepted a wrong password"
    assert teacher.log_in(), f"the instructor could not log in:\n{hub.log_tail()}"
    teacher.start_server()
    step("instructor logged in, server started")

    # The instructor makes the course in a terminal of her JupyterLab, then releases lesson 01 from formgrader.
    code, output = teacher.terminal('leaklab course ~/leaklab-course --exchange "$LEAKLAB_EXCHANGE"')
    assert code == 0, f"`leaklab course` failed in the instructor's terminal:\n{output[-3000:]}"
    released = teacher.call("POST", f"formgrader/api/assignment/{SLUG}/release")
    assert released["success"], f"formgrader could not release {SLUG}: {released}"
    step("course made (terminal), lesson 01 released (formgrader)")

    for name in STUDENTS:
        student = people[name]
        assert student.log_in(), f"{name} could not log in:\n{hub.log_tail()}"
        student.start_server()
        assert student.call("GET", "formgrader/api/status", expect=404) is None, "a student has the formgrader"
        assert status_of(student.call("GET", "assignments", params={"course_id": COURSE_ID}), SLUG) == {"released"}
        fetched = student.call("POST", "assignments/fetch", body={"course_id": COURSE_ID, "assignment_id": SLUG})
        assert status_of(fetched, SLUG) == {"fetched"}, f"{name} could not fetch {SLUG}: {fetched}"
        assert student.contents(NOTEBOOK)["content"]["cells"], f"{name}'s fetched notebook is empty"
        step(f"{name} logged in, server started, lesson fetched")

    # One student writes the fix (the reference solution, saved as JupyterLab saves it) and validates it in
    # her server's kernel; the other hands in the exercise as released.
    solution = json.loads((ROOT / "solutions" / f"{SLUG}.ipynb").read_text(encoding="utf-8"))
    people[FULL].save_notebook(NOTEBOOK, solution)
    validated = people[FULL].call("POST", "assignments/validate", body={"path": NOTEBOOK})
    assert validated["success"] and "failed" not in validated["value"], f"Validate failed the fix: {validated}"
    step(f"{FULL} saved the fix, Validate passed")
    for name in STUDENTS:
        body = {"course_id": COURSE_ID, "assignment_id": SLUG}
        submitted = people[name].call("POST", "assignments/submit", body=body)
        assert submitted["success"] and "submitted" in status_of(submitted, SLUG), f"{name}: {submitted}"
    step("both submitted")

    # The instructor collects from formgrader, grades in her terminal the course's way, and exports.
    collected = teacher.call("POST", f"formgrader/api/assignment/{SLUG}/collect")
    assert collected["success"], f"formgrader could not collect: {collected}"
    code, output = teacher.terminal("cd ~/leaklab-course && leaklab autograde . --jobs 2 && nbgrader export")
    assert code == 0, f"grading failed in the instructor's terminal:\n{output[-3000:]}"
    step("collected (formgrader), graded and exported (terminal)")

    record.leaklab_table = scores_in_csv(teacher.contents("leaklab-course/leaklab/grades.csv")["content"])
    exported = teacher.contents("leaklab-course/grades.csv")["content"]
    record.exported = scores_in_csv(exported, student="student_id", score="raw_score")
    submissions = teacher.call("GET", f"formgrader/api/submissions/{SLUG}")
    record.formgrader = {row["student"]: (row["score"], row["max_score"]) for row in submissions}


@pytest.fixture(scope="module")
def workshop() -> Record:
    """The whole class on a real hub, run to its end: users made, hub up, the class, hub down, all undone."""
    reason = preflight()
    if reason is not None:
        pytest.skip(reason)
    record = Record()
    started = time.monotonic()
    try:
        with classroom() as room:
            record.modes, record.temp = dict(room.journal.modes), str(room.temp)
            record.homes = [pwd.getpwnam(name).pw_dir for name in USERS]
            hub = start_hub(room)
            record.step(started, "users made, hub started")
            ports = set(hub.ports)
            try:
                run_the_class(room, hub, record, lambda name: record.step(started, name))
            finally:
                ports |= servers_ports(USERS)
                record.hub_exit = hub.stop()
                record.processes_after_stop, record.listening_after_stop = left_after(USERS, ports)
                record.files_after_stop = files_of(USERS, skip=str(room.temp))
                record.step(started, "hub stopped")
    except Unavailable as exc:
        pytest.skip(str(exc))
    finally:
        record.step(started, "users deleted, folders restored, temp removed")
        WORK.mkdir(parents=True, exist_ok=True)
        (WORK / "timings.txt").write_text("".join(f"{seconds:6.1f} s  {name}\n" for name, seconds in record.steps))
    return record


def test_the_grades_are_full_and_zero(workshop: Record) -> None:
    """leaklab's table and nbgrader's export (the gradebook) give the fix 9 of 9 and the exercise 0 of 9."""
    assert workshop.leaklab_table == EXPECTED
    assert workshop.exported == EXPECTED


def test_formgrader_shows_the_grades(workshop: Record) -> None:
    """The instructor's formgrader lists the same grades as the gradebook."""
    assert workshop.formgrader == EXPECTED


def test_nothing_of_the_class_is_left(workshop: Record) -> None:
    """After the hub stops: no process of the class's users, nothing on the hub's or servers' ports, none of
    their files in /tmp and the like; after the clean-up: no user, no home, no temp folder, no journal, and
    every opened folder's mode back."""
    assert workshop.hub_exit == 0
    assert workshop.processes_after_stop == []
    assert workshop.listening_after_stop == []
    assert workshop.files_after_stop == []
    assert [name for name in USERS if user_exists(name)] == []
    assert [home for home in workshop.homes if os.path.exists(home)] == []
    assert not Path(workshop.temp).exists()
    assert not JOURNAL.exists()
    assert not MACHINE.exists()
    now = {folder: stat.S_IMODE(os.stat(folder).st_mode) for folder in workshop.modes}
    assert now == workshop.modes
