"""The class grader's parts that need no kernel (`grading.classroom`): the ledger and its table, the
submission time, why a job handed back no outcome, the clean-up of a job's processes without a
cgroup (by the mark in their environment), and a cluster's address check and workers' fingerprint."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leaklab._errors import LeaklabError
from leaklab.grading.classroom import cluster, processes
from leaklab.grading.classroom.discovery import Submission
from leaklab.grading.classroom.job import JobFiles, collect, memory_reason, process_reason, unfinished_reason
from leaklab.grading.classroom.processes import MemoryEvents
from leaklab.grading.classroom.records import Outcome, read_ledger, submitted_at, write_table
from leaklab.grading.classroom.scheduler import IdleCores, Slots
from leaklab.grading.results import Reason, TestResult
from leaklab.grading.settings import Limits

SLUG = "04_lifeless_pool"


def test_the_ledger_skips_a_line_cut_short_and_keeps_the_latest(tmp_path):
    (tmp_path / "leaklab").mkdir()
    first = Outcome("ann", SLUG, "abc", score=4, max_score=9)
    latest = Outcome("ann", SLUG, "def", score=9, max_score=9, tests={"t": TestResult(9, 9, own=9, kernel=9)})
    lines = [json.dumps(first.to_json()), json.dumps(latest.to_json()), '{"student": "bob", "assig']
    (tmp_path / "leaklab" / "grades.jsonl").write_text("\n".join(lines))
    outcomes = read_ledger(tmp_path)
    assert list(outcomes) == [("ann", SLUG)] and outcomes["ann", SLUG] == latest
    table = write_table(tmp_path, outcomes).read_text().splitlines()
    assert table == ["student,assignment,notebook,score,max_score,reason,detail", f"ann,{SLUG},{SLUG}.ipynb,9,9,,"]


def test_a_ledger_written_before_reasons_were_data_still_reads(tmp_path):
    (tmp_path / "leaklab").mkdir()
    old = {
        "student": "ann",
        "assignment": SLUG,
        "checksum": "abc",
        "score": 0.0,
        "max_score": 9.0,
        "tests": {"t": {"score": 0.0, "max_score": 9.0, "kernel": 0.0, "own": 0.0, "message": "m"}},
        "reason": "timeout",
        "detail": "d",
        "seconds": 1.0,
    }
    (tmp_path / "leaklab" / "grades.jsonl").write_text(json.dumps(old) + "\n")
    outcome = read_ledger(tmp_path)["ann", SLUG]
    assert outcome.reason is Reason.TIMEOUT and outcome.tests["t"].message == "m"


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
    assert submitted_at(Submission("ann", SLUG, tmp_path / f"{SLUG}.ipynb")) == expected


@pytest.mark.parametrize(
    ("timed_out", "crash_reason", "exit_code", "reason"),
    [
        (True, "", None, Reason.TIMEOUT),
        (True, "memory limit", 1, Reason.TIMEOUT),
        (False, "memory limit", 1, Reason.MEMORY_LIMIT),
        (False, "process limit", 1, Reason.PROCESS_LIMIT),
        (False, "", -signal.SIGXFSZ, Reason.OUTPUT_LIMIT),
        (False, "", 1, Reason.GRADER_CRASHED),
        (False, "", -signal.SIGKILL, Reason.GRADER_CRASHED),
    ],
)
def test_why_a_job_handed_back_no_outcome(timed_out, crash_reason, exit_code, reason):
    assert unfinished_reason(timed_out=timed_out, crash_reason=crash_reason, exit_code=exit_code) is reason


def test_the_oom_killer_ending_a_jobs_processes_names_the_memory_limit():
    killed = MemoryEvents(oom_kills=2)
    assert unfinished_reason(timed_out=True, crash_reason="", exit_code=None, memory=killed) is Reason.MEMORY_LIMIT
    assert memory_reason(None, "", MemoryEvents(), 2**32) == (None, "")
    assert memory_reason(Reason.KERNEL_DIED, "died", MemoryEvents(), 2**32) == (Reason.KERNEL_DIED, "died")
    reason, detail = memory_reason(Reason.KERNEL_DIED, "died", MemoryEvents(oom_kills=3), 4 * 2**30)
    assert (
        reason is Reason.MEMORY_LIMIT
        and detail == "its processes went over 4 GiB together: 3 ended by the OOM killer; died"
    )


def test_a_job_refused_processes_at_its_limit_hit_the_process_limit_whichever_timer_fired_after():
    reason, said = process_reason(Reason.TIMEOUT, "the run did not end", 12, 1024)
    assert reason is Reason.PROCESS_LIMIT and said.startswith("its processes and threads reached 1024 together")
    assert said.endswith("the run did not end")
    assert process_reason(Reason.TIMEOUT, "t", 0, 1024) == (Reason.TIMEOUT, "t")  # never got there: the clock
    assert process_reason(None, "", 3, 1024) == (None, "")  # refused, but graded normally: nothing to say


def test_a_job_held_at_its_memory_limit_until_time_ran_out_hit_the_memory_limit():
    """Which limit a job hit is what the cgroup saw, not which timer fired first on a loaded machine."""
    held = MemoryEvents(reached_limit=True)
    assert unfinished_reason(timed_out=True, crash_reason="", exit_code=None, memory=held) is Reason.MEMORY_LIMIT
    assert unfinished_reason(timed_out=False, crash_reason="", exit_code=1, memory=held) is Reason.GRADER_CRASHED
    reason, detail = memory_reason(Reason.TIMEOUT, "the burst did not finish", held, 2**30)
    assert reason is Reason.MEMORY_LIMIT and detail.startswith("its processes reached 1 GiB together")
    assert memory_reason(Reason.ANSWER_FAILED, "x", held, 2**30) == (Reason.ANSWER_FAILED, "x")


@pytest.mark.skipif(processes.memory_cgroup_root() is None, reason="no writable memory cgroup here")
def test_a_jobs_memory_cgroup_holds_its_processes_together_and_counts_the_oom_kills():
    """Two processes of 48 MiB each under a 64 MiB limit: the kernel ends one, and the count says so."""
    group = processes.make_memory_cgroup(f"leaklab-test-{os.getpid()}", Limits(job_memory_bytes=64 * 2**20))
    assert group is not None
    hog = "import time\nhoard = bytearray(48 * 2**20)\nprint('held', flush=True)\ntime.sleep(30)"
    try:
        hogs = [
            subprocess.Popen(
                [sys.executable, "-c", hog],
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
            )
            for _ in range(2)
        ]
        for process in hogs:
            process.stdout.readline()  # held, or ended before it could say so
        deadline = time.monotonic() + 20
        while processes.memory_events(group).oom_kills == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        events = processes.memory_events(group)
        assert events.oom_kills >= 1 and events.reached_limit
    finally:
        for process in hogs:
            process.kill()
            process.wait()
            process.stdout.close()
        processes.remove_group(group)
    assert not group.exists()


def test_a_job_without_an_outcome_is_recorded_with_its_crash_record(root, tmp_path):
    course = tmp_path / "course"
    (course / "source" / SLUG).mkdir(parents=True)
    (course / "source" / SLUG / f"{SLUG}.ipynb").write_bytes((root / "notebooks" / f"{SLUG}.ipynb").read_bytes())
    files = JobFiles(tmp_path, "secret")
    sub = Submission("ann", SLUG, tmp_path / "missing.ipynb")
    files.crash.write_text(json.dumps({"reason": "memory limit", "detail": "MemoryError"}))
    outcome = collect(sub, course, files, timed_out=False, exit_code=1, limits=Limits())
    assert (outcome.reason, outcome.detail, outcome.score, outcome.max_score) == (
        Reason.MEMORY_LIMIT,
        "MemoryError",
        0,
        9,
    )
    files.crash.unlink()
    files.log.write_text("Traceback ...\nSomeError: the last line\n")
    outcome = collect(sub, course, files, timed_out=False, exit_code=1, limits=Limits())
    assert (outcome.reason, outcome.detail) == (Reason.GRADER_CRASHED, "SomeError: the last line")


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


def test_without_a_cgroup_every_marked_process_of_a_job_is_killed():
    token = "job-test-1"
    env = {**os.environ, processes.JOB_ENV: token}
    runaway = subprocess.Popen(
        [sys.executable, "-c", _RUNAWAY], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert runaway.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while len(processes.job_processes(token, None)) < 11 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(processes.job_processes(token, None)) == 11  # the process, 5 children, 5 grandchildren
        processes.kill_job(runaway.pid, token, None)
        runaway.wait(timeout=10)
        assert processes.job_processes(token, None) == []
    finally:
        runaway.kill()
        runaway.wait()
        runaway.stdout.close()


def test_the_job_mark_is_what_the_clean_up_looks_for():
    assert processes.job_processes("job-nobody-0", None) == []
    assert Path("/proc/self/environ").exists()  # Linux only, as grading is


class Ticks:
    """A fake /proc/stat: each read advances 100 ticks per core, `idle` of them idle per core."""

    def __init__(self) -> None:
        self.idle, self.read_ticks = 0.0, (0, 0)

    def __call__(self) -> tuple[int, int]:
        cores = os.cpu_count() or 1
        idle, total = self.read_ticks
        self.read_ticks = (idle + int(100 * cores * self.idle), total + 100 * cores)
        return self.read_ticks


def test_slots_one_per_core_and_more_only_while_a_core_sits_idle(monkeypatch):
    # GIVEN the default slots on a machine whose cores are busy, then idle, WHEN the class grader asks
    # to start jobs, THEN one per core always, one more a second while cores idle, never past EXTRA per core.
    cores, now, ticks = os.cpu_count() or 1, [0.0], Ticks()
    free = [2**40]
    slots = Slots(None, IdleCores(ticks), clock=lambda: now[0], job_memory_bytes=2**30, available=lambda: free[0])
    assert all(slots.open(grading) for grading in range(cores))
    now[0] += 5
    assert not slots.open(cores)  # busy: the floor
    ticks.idle = 0.9  # 90% idle: more than Slots.IDLE cores
    assert not slots.open(cores)  # a second has not passed since the last look
    now[0] += 1.5
    assert slots.open(cores)
    assert not slots.open(cores + 1)  # at most one a second
    for extra in range(1, cores * Slots.EXTRA - cores + 5):
        now[0] += 1.5
        assert slots.open(cores + extra) == (cores + extra < cores * Slots.EXTRA)
    free[0] = 2**29  # idle, but less memory free than a job may take
    now[0] += 1.5
    assert not slots.open(cores) and slots.open(cores - 1)


def test_a_fixed_number_of_jobs_is_that_number_whatever_the_load():
    ticks, now = Ticks(), [0.0]
    ticks.idle = 1.0
    slots = Slots(3, IdleCores(ticks), clock=lambda: now[0])
    now[0] += 10
    assert [slots.open(grading) for grading in range(5)] == [True, True, True, False, False]
    assert str(slots) == "3 at a time"


@pytest.mark.parametrize("address", ["nonsense", "tcp://127.0.0.1", "no-such-scheduler.json", "http://host"])
def test_a_cluster_address_that_is_neither_an_address_nor_a_file_is_refused_at_once(address):
    with pytest.raises(LeaklabError, match="neither a scheduler's address"):
        cluster._connect(address)


def test_a_worker_whose_lock_differs_has_another_fingerprint(tmp_path):
    checkout = Path(__file__).resolve().parents[3]
    copy = tmp_path / "checkout"
    (copy / "grader").mkdir(parents=True)
    shutil.copyfile(checkout / "grader" / "nbgrader_config.py", copy / "grader" / "nbgrader_config.py")
    shutil.copyfile(checkout / "requirements.lock", copy / "requirements.lock")
    assert cluster.fingerprint(copy) == cluster.fingerprint(checkout)
    (copy / "requirements.lock").write_text("another==1\n")
    assert cluster.fingerprint(copy) != cluster.fingerprint(checkout)
