"""`make bench-class`: the class-grading figures at the issue's full size, and grading under load.

    python tests/benchmarks/bench_class.py [--students 40] [--lessons 01_forgotten_cancel ...] [--repeat 20]
                                           [--jobs 2] [--runs 1]

1. A class of `--students` students, each handing in every lesson's reference solution, graded by
   `leaklab autograde --jobs 2` and by nbgrader's own `nbgrader autograde`, one assignment after another,
   side by side in one run (bench.py's class part, at full size: about an hour for 40 x 8).
   Goals: at least 1.8x on 2 cores, at most 1.5 s per notebook and core above the notebook's execution.
2. The reference solutions graded `--repeat` times each while two CPU burners load both cores: how many
   got full marks. Goal: all of them.

Printed as bench.py prints: progress on stderr, a Markdown table on stdout; never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import (
    BIN,
    ROOT,
    Progress,
    Row,
    bench_class,
    leaklab_marks,
    lessons,
    make_course,
    report,
    timed,
    verdict,
)


def bench_under_load(slugs: list[str], *, repeat: int, jobs: int, say: Progress) -> Row:
    """Every solution graded `repeat` times while two busy loops take both cores: all full marks?"""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
            course = Path(scratch) / "course"
            make_course(course, slugs, [f"student{number:03d}" for number in range(repeat)])
            say(f"under load: grading {repeat} x {len(slugs)} solutions beside 2 CPU burners")
            seconds = timed([BIN / "leaklab", "autograde", course, "--jobs", str(jobs), "--course", ROOT], cwd=ROOT)
            full, total = leaklab_marks(course)
            for line in (course / "leaklab" / "grades.jsonl").read_text(encoding="utf-8").splitlines():
                graded = json.loads(line)  # a solution that lost points: which tests, and why
                if graded["score"] < graded["max_score"]:
                    lost = {k: t["message"][:200] for k, t in graded["tests"].items() if t["score"] < t["max_score"]}
                    say(f"under load: {graded['student']} {graded['assignment']} {graded['score']:g}: {lost}")
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    say(f"under load: {full} of {total} full marks in {seconds:.0f} s")
    return Row(
        f"under load (2 CPU burners): reference solutions with full marks, {repeat} x {len(slugs)}",
        f"{full} of {total}",
        "all",
        verdict(full == total == repeat * len(slugs)),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--students", type=int, default=40, help="students in the timed class (40)")
    parser.add_argument("--lessons", nargs="+", default=lessons(), metavar="LESSON", help="lesson slugs (all)")
    parser.add_argument("--repeat", type=int, default=20, help="gradings of each solution under load (20)")
    parser.add_argument("--jobs", type=int, default=2, help="leaklab autograde's --jobs (2)")
    parser.add_argument("--runs", type=int, default=1, help="timed runs of each side, interleaved (1)")
    args = parser.parse_args()
    unknown = sorted(set(args.lessons) - set(lessons()))
    if unknown:
        parser.error(f"no lesson {', '.join(unknown)}; lessons: {', '.join(lessons())}")
    if min(args.students, args.repeat, args.jobs, args.runs) < 1:
        parser.error("--students, --repeat, --jobs and --runs must be at least 1")

    def measure(say: Progress) -> list[Row]:
        rows = bench_class(
            args.lessons,
            students=args.students,
            runs=args.runs,
            jobs=args.jobs,
            executions={},
            say=say,
            execution_runs=3,
        )
        return [*rows, bench_under_load(args.lessons, repeat=args.repeat, jobs=args.jobs, say=say)]

    return report("bench-class", args.runs, measure)


if __name__ == "__main__":
    sys.exit(main())
