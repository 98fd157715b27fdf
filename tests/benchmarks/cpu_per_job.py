"""CPU per notebook of `leaklab autograde` at several `--jobs` (issue 16: where the CPU above nbgrader's goes).

    .venv/bin/python tests/benchmarks/cpu_per_job.py --students 2 --jobs 1 4

Grades a class of every solution, once per `--jobs` value, each in a fresh copy of the course, and prints
wall and CPU seconds per notebook; CPU counts every process of the run (sandboxed kernels included) where
the machine has a cpuacct cgroup (v1), as `make bench-class` counts it. Prints only; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench import BIN, ROOT, make_course, timed_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2, help="students in the class (2)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4], help="values of --jobs to try (1 4)")
    args = parser.parse_args()
    slugs = sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))
    names = [f"student{number:03d}" for number in range(args.students)]
    notebooks = len(slugs) * len(names)
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory(prefix="cpu-per-job-") as scratch:
            course = Path(scratch) / "course"
            make_course(course, slugs, names)
            command = [BIN / "leaklab", "autograde", course, "--jobs", str(jobs), "--course", ROOT, "--force"]
            wall, cpu = timed_cpu(command, cwd=ROOT)
            spent = f"CPU {cpu:.0f} s ({cpu / notebooks:.2f} s a notebook)" if cpu is not None else "CPU not counted"
            took = f"wall {wall:.0f} s ({wall / notebooks:.2f} s a notebook)"
            print(f"--jobs {jobs}: {notebooks} notebooks, {took}, {spent}")


if __name__ == "__main__":
    main()
