"""The class grader's parts (`_batch`) that need no kernel: tampered test cells, reasons, the ledger,
and the clean-up of a job's processes without a cgroup (by the mark in their environment)."""

from __future__ import annotations

import copy
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leaklab._batch import (
    _JOB_ENV,
    Outcome,
    Submission,
    _cause,
    _common_order,
    _job_processes,
    _kill_job,
    _structure_problems,
    _submitted_at,
    read_ledger,
    write_table,
)

SLUG = "04_lifeless_pool"


@pytest.fixture
def release(root) -> dict:
    return json.loads((root / "solutions" / f"{SLUG}.ipynb").read_text())


def cell(nb: dict, what: str) -> dict:
    return next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == f"{SLUG}_{what}")


def test_an_untouched_notebook_has_no_structure_problem(release):
    assert _structure_problems(release, copy.deepcopy(release)) == {}


def test_each_tampered_test_cell_is_named_with_what_was_done(release):
    mine = copy.deepcopy(release)
    cell(mine, "no_worker_survives")["source"] = "pass\n"
    mine["cells"].remove(cell(mine, "stop_waits_for_workers"))
    cell(mine, "failure_keeps_worker")["cell_type"] = "markdown"
    cell(mine, "every_job_accounted_for")["metadata"]["nbgrader"]["points"] = 20
    assert _structure_problems(release, mine) == {
        f"{SLUG}_no_worker_survives": f"test cell {SLUG}_no_worker_survives edited",
        f"{SLUG}_stop_waits_for_workers": f"test cell {SLUG}_stop_waits_for_workers deleted",
        f"{SLUG}_failure_keeps_worker": f"test cell {SLUG}_failure_keeps_worker turned into markdown",
        f"{SLUG}_every_job_accounted_for": f"points of {SLUG}_every_job_accounted_for changed",
    }


def test_a_moved_test_cell_is_the_only_one_named(release):
    mine = copy.deepcopy(release)
    last = cell(mine, "no_worker_survives")
    mine["cells"].remove(last)
    mine["cells"].insert(mine["cells"].index(cell(mine, "stop_waits_for_workers")), last)
    moved = f"{SLUG}_no_worker_survives"
    assert _structure_problems(release, mine) == {moved: f"test cell {moved} moved"}


def test_common_order_keeps_the_longest_run_in_order():
    assert _common_order(list("dabc"), list("abcd")) == set("abc")
    assert _common_order(list("abcd"), list("abcd")) == set("abcd")
    assert len(_common_order(list("ba"), list("ab"))) == 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("AssertionError: the handler's run did not end within 11 s and was stopped", "timeout"),
        ("CellTimeoutError: the cell ran past the per-cell timeout", "timeout"),
        ("AssertionError: stop waits for workers: never checked: the burst did not finish", "timeout"),
        ("AssertionError: the answer cell raised MemoryError: ", "memory limit"),
        ("AssertionError: the answer cell raised RuntimeError: can't start new thread", "process limit"),
        ("AssertionError: the answer cell raised BlockingIOError: [Errno 11] Resource temporarily", "process limit"),
        ("AssertionError: the answer cell raised OSError: [Errno 27] File too large", "output limit"),
        ("AssertionError: the answer cell raised SystemExit: ", "answer failed"),
        ("AssertionError: the handler's run ended without a result: exit code 0", "answer failed"),
        ("AssertionError: stop waits for workers: 0 of 1 checks", ""),
    ],
)
def test_the_cause_of_a_failure_is_named_only_when_it_is_not_a_wrong_answer(message, reason):
    assert _cause([message])[0] == reason


def test_the_ledger_skips_a_line_cut_short_and_keeps_the_latest(tmp_path):
    (tmp_path / "leaklab").mkdir()
    first = Outcome("ann", SLUG, "abc", score=4, max_score=9)
    latest = Outcome("ann", SLUG, "def", score=9, max_score=9)
    lines = [json.dumps(first.__dict__), json.dumps(latest.__dict__), '{"student": "bob", "assig']
    (tmp_path / "leaklab" / "grades.jsonl").write_text("\n".join(lines))
    outcomes = read_ledger(tmp_path)
    assert list(outcomes) == [("ann", SLUG)] and outcomes["ann", SLUG].score == 9
    table = write_table(tmp_path, outcomes).read_text().splitlines()
    assert table == ["student,assignment,notebook,score,max_score,reason,detail", f"ann,{SLUG},{SLUG}.ipynb,9,9,,"]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-11-28 09:15:02.123456 UTC", datetime.datetime(2026, 11, 28, 9, 15, 2, 123456)),
        ("not a time", None),
        ("", None),
        (None, None),  # no timestamp.txt
    ],
)
def test_the_submission_time_is_the_one_nbgrader_wrote(tmp_path, written, expected):
    """The formgrader counts a submission as autograded only if the gradebook has this same time."""
    if written is not None:
        (tmp_path / "timestamp.txt").write_text(written + "\n")
    assert _submitted_at(Submission("ann", SLUG, tmp_path / f"{SLUG}.ipynb")) == expected


# A process that starts children which leave its session and each start one more: only the mark in
# their environment still ties them to the job.
_RUNAWAY = """
import os, time
for _ in range(5):
    if os.fork() == 0:
        os.setsid()
        os.fork()
        time.sleep(600)
        os._exit(0)
print("ready", flush=True)
time.sleep(600)
"""


def test_without_a_cgroup_every_marked_process_of_a_job_is_killed(tmp_path):
    workdir = tmp_path / "job-test-1"
    env = {**os.environ, _JOB_ENV: workdir.name}
    runaway = subprocess.Popen(
        [sys.executable, "-c", _RUNAWAY], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert runaway.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while len(_job_processes(workdir.name, None)) < 11 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_job_processes(workdir.name, None)) == 11  # the process, 5 children, 5 grandchildren
        _kill_job(runaway.pid, workdir, None)
        runaway.wait(timeout=10)
        assert _job_processes(workdir.name, None) == []
    finally:
        runaway.kill()
        runaway.wait()
        runaway.stdout.close()


def test_the_job_mark_is_what_the_clean_up_looks_for():
    assert _job_processes("job-nobody-0", None) == []
    assert Path("/proc/self/environ").exists()  # Linux only, as grading is
