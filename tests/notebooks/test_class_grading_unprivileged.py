"""`leaklab autograde` run by an unprivileged user the test creates, on part of the hostile corpus beside
honest submissions: no cgroup is writable to it, so what holds must hold by the sandbox alone. Bombs stop
at their own sandbox's cap, honest students beside them keep full marks, the grader cannot be reached,
and no process of the run survives it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from hostile import CORPUS
from test_class_grading import LIMITS, ROOT, finish, hand_in, leaklab, table
from users import as_user, processes_of, scratch_folder, temporary_user

# Submissions whose containment does not lean on root's cgroups, with honest ones beside them. Not the
# memory held across processes: without a memory cgroup it is bounded per process only (said), and how
# long 8 GiB take to fill is the machine's business.
PART = (
    "solution-04",
    "solution-01",
    "executor-04",
    "thread-bomb",
    "fork-bomb",
    "escaping-children",
    "kill-the-grader",
    "course-rewrite",
    "snooping",
    "disk-fill",
    "hard-coded-result",
    "forged-from-a-thread",
)
CODE = "import sys; from leaklab._cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def graded():
    with scratch_folder("leaklab-unprivileged-") as folder:
        course = folder / "course"
        assert finish(leaklab("course", str(course)))[0] == 0
        hand_in(course, {name: (CORPUS[name].assignment, CORPUS[name].build(CORPUS[name].assignment)) for name in PART})
        with temporary_user("llgrd", [ROOT / "src", course]) as user:
            shutil.chown(folder, user)
            subprocess.run(["chown", "-R", user, str(course)], check=True)
            command = [sys.executable, "-c", CODE, "autograde", str(course), "--jobs", "2", *LIMITS]
            env = [f"LEAKLAB_ARTEFACTS={folder / 'artefacts'}"]
            done = subprocess.run(
                as_user(user, folder, *env, *command), capture_output=True, text=True, timeout=900, cwd=ROOT
            )
            left = processes_of(user)
        yield {"course": course, "code": done.returncode, "stderr": done.stderr, "left": left}


def test_an_unprivileged_grader_grades_the_part_and_says_memory_is_per_process(graded):
    assert f"[{len(PART)}/{len(PART)}]" in graded["stderr"], graded["stderr"][-3000:]
    assert "memory is bounded per process" in graded["stderr"]


@pytest.mark.parametrize("name", PART)
def test_each_is_contained_as_for_root(graded, name):
    row, case = table(graded["course"])[name], CORPUS[name]
    assert (float(row["score"]), row["reason"]) == (case.score, case.reason), (case.why, row["detail"])


def test_nothing_of_the_run_survives_it(graded):
    assert graded["left"] == []
