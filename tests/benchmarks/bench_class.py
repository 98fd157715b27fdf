"""Class-grading figures for the README: print them, never assert them.

    python tests/benchmarks/bench_class.py [--students 40] [--lessons 01_forgotten_cancel ...] [--repeat 20]

1. A class of `--students` students, each submitting every lesson's reference solution: the wall time
   of `leaklab autograde --jobs 2` against nbgrader's own `nbgrader autograde`, one assignment after
   another, on the same submissions (each in a copy of the same course), measured one after the other in
   one run. Goal: at least 1.8x on 2 cores, and at most 1.5 s per notebook above the notebook's own
   execution time (kernel start included).
2. The reference solutions graded `--repeat` times each while two CPU burners load both cores: how many
   got full marks. Goal: all of them.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def lessons() -> list[str]:
    return sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def make_course(folder: Path, slugs: list[str], students: int) -> None:
    subprocess.run([BIN / "leaklab", "course", str(folder), "--course", str(ROOT)], check=True, capture_output=True)
    for number in range(students):
        for slug in slugs:
            target = folder / "submitted" / f"student{number:03d}" / slug
            target.mkdir(parents=True)
            shutil.copyfile(ROOT / "solutions" / f"{slug}.ipynb", target / f"{slug}.ipynb")


def timed(command: list, cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def execution_seconds(slug: str) -> float:
    """The notebook's own execution, kernel start included (median of 3)."""
    times = []
    for _ in range(3):
        nb = nbformat.read(ROOT / "solutions" / f"{slug}.ipynb", as_version=4)
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": folder}}).execute()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def full_marks(course: Path) -> tuple[int, int]:
    with (course / "leaklab" / "grades.csv").open() as table:
        rows = list(csv.DictReader(table))
    return sum(row["score"] == row["max_score"] for row in rows), len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--lessons", nargs="*", default=lessons())
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    notebooks = args.students * len(args.lessons)
    print(f"machine: {os.cpu_count()} cores; class: {args.students} students x {len(args.lessons)} lessons")

    with tempfile.TemporaryDirectory(prefix="bench-class-") as scratch:
        ours, theirs = Path(scratch) / "ours", Path(scratch) / "theirs"
        for course in (ours, theirs):
            make_course(course, args.lessons, args.students)
        sequential = sum(timed([BIN / "nbgrader", "autograde", slug], cwd=theirs) for slug in args.lessons)
        batch = timed([BIN / "leaklab", "autograde", str(ours), "--jobs", str(args.jobs), "--course", str(ROOT)], ROOT)
        execution = statistics.mean(execution_seconds(slug) for slug in args.lessons)
        per_notebook = batch * args.jobs / notebooks
        print(f"nbgrader autograde, sequential: {sequential:8.1f} s  ({sequential / notebooks:.2f} s per notebook)")
        print(f"leaklab autograde --jobs {args.jobs}:   {batch:8.1f} s  ({batch / notebooks:.2f} s per notebook)")
        print(f"speed-up: {sequential / batch:.2f}x  (goal >= 1.8x)")
        print(
            f"per notebook and core: {per_notebook:.2f} s against {execution:.2f} s of execution: "
            f"{per_notebook - execution:+.2f} s overhead (goal <= 1.5 s)"
        )
        ok, total = full_marks(ours)
        print(f"full marks in the timed run: {ok} of {total}")

    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
            course = Path(scratch) / "course"
            make_course(course, args.lessons, args.repeat)
            timed([BIN / "leaklab", "autograde", str(course), "--jobs", str(args.jobs), "--course", str(ROOT)], ROOT)
            ok, total = full_marks(course)
            print(f"under load (2 CPU burners): {ok} of {total} reference solutions got full marks (goal: all)")
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


if __name__ == "__main__":
    main()
