"""CPU per notebook of `leaklab autograde` at several `--jobs` (issue 16: where the CPU above nbgrader's goes).

    .venv/bin/python tests/benchmarks/cpu_per_job.py --students 2 --jobs 1 4 [--steps]

Grades a class of every solution, once per `--jobs` value, each in a fresh copy of the course, and prints
wall and CPU seconds per notebook; CPU counts every process of the run (sandboxed kernels included) where
the machine has a cpuacct cgroup (v1), as `make bench-class` counts it. With `--steps`, the CPU is also
split by what spent it (`STEPS`: the sandboxed kernels, the isolated runs, the traffic draws, the class
grader and its forked jobs...), read from /proc every 20 ms for every process of the run's cgroup: a
process's last 20 ms may be missed, so the split's sum falls a little short of the cgroup's total. Prints
only; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import BIN, CPUACCT, ROOT, cpu_accounting, make_course, timed_cpu

# What spent the CPU, by a word of its command line; the first that matches names it.
STEPS = (
    ("ipykernel_launcher", "kernels (nbgrader's run of the notebook, sandboxed)"),
    ("leaklab.grading.child", "isolated runs (the grader's own run of the tests)"),
    ("leaklab.scenarios._traffic", "traffic draws (Hypothesis, a fresh interpreter each)"),
    ("leaklab.scenarios.", "lessons' own services (processes the notebooks start)"),
    ("memray", "memray's reports"),
    ("leaklab autograde", "the class grader and its forked jobs (nbgrader's autograde, feedback, checks)"),
    ("bwrap", "bubblewrap"),
)
TICK = os.sysconf("SC_CLK_TCK")


def step_of(command: str) -> str:
    return next((name for word, name in STEPS if word in command), "other: " + command[:60])


def by_step(command: list[str | Path], cwd: Path) -> tuple[float, float, Counter[str]]:
    """Wall and CPU seconds of `command` (its cgroup's), and its CPU by step, from /proc."""
    group = Path(tempfile.mkdtemp(prefix="bench-steps-", dir=CPUACCT))
    seen: dict[tuple[int, str], tuple[str, int]] = {}  # (pid, start time) -> command line, CPU ticks
    start = time.perf_counter()
    child = subprocess.Popen(
        [str(part) for part in command],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
    )
    while child.poll() is None:
        for pid in (group / "cgroup.procs").read_text().split():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            key = (int(pid), fields[19])
            seen[key] = (line or seen.get(key, ("", 0))[0], int(fields[11]) + int(fields[12]))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    total = int((group / "cpuacct.usage").read_text()) / 1e9
    steps: Counter[str] = Counter()
    for line, ticks in seen.values():
        steps[step_of(line)] += ticks / TICK
    for _ in range(50):  # a process the command left behind keeps the group until it ends
        try:
            group.rmdir()
            break
        except OSError:
            time.sleep(0.1)
    return wall, total, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2, help="students in the class (2)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4], help="values of --jobs to try (1 4)")
    parser.add_argument("--steps", action="store_true", help="split the CPU by what spent it (needs cpuacct)")
    args = parser.parse_args()
    if args.steps and not cpu_accounting():
        parser.error("--steps needs a cpuacct cgroup (v1) this user can write: " + str(CPUACCT))
    slugs = sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))
    names = [f"student{number:03d}" for number in range(args.students)]
    notebooks = len(slugs) * len(names)
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory(prefix="cpu-per-job-") as scratch:
            course = Path(scratch) / "course"
            make_course(course, slugs, names)
            command = [BIN / "leaklab", "autograde", course, "--jobs", str(jobs), "--course", ROOT, "--force"]
            if args.steps:
                wall, cpu, steps = by_step(command, ROOT)
            else:
                (wall, cpu), steps = timed_cpu(command, cwd=ROOT), Counter()
            spent = f"CPU {cpu:.0f} s ({cpu / notebooks:.2f} s a notebook)" if cpu is not None else "CPU not counted"
            took = f"wall {wall:.0f} s ({wall / notebooks:.2f} s a notebook)"
            print(f"--jobs {jobs}: {notebooks} notebooks, {took}, {spent}")
            for step, seconds in steps.most_common():
                print(f"    {seconds / notebooks:5.2f} s a notebook  {step}")
            if steps:
                print(f"    {sum(steps.values()) / notebooks:5.2f} s a notebook  (the split's sum)")


if __name__ == "__main__":
    main()
