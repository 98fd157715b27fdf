"""`make bench-class`: the class-grading figures at the issue's full size, and grading under load.

    python tests/benchmarks/bench_class.py [--students 40] [--lessons 01_forgotten_cancel ...] [--repeat 20]
                                           [--jobs N] [--runs 1] [--no-write]

1. A class of `--students` students, each handing in every lesson's reference solution, graded by
   `leaklab autograde` (its default slots, or `--jobs N`) and by nbgrader's own `nbgrader autograde`,
   one assignment after another, side by side in one run (bench.py's class part, at full size: about an
   hour for 40 x 8).
   Goals: at least 3.5x on 2 cores (the jobs mostly wait), at most 1.5 s per notebook and core above
   the notebook's execution.
2. The reference solutions graded `--repeat` times each while two CPU burners load both cores: how many
   got full marks. Goal: all of them.

Printed as bench.py prints: progress on stderr, a Markdown table on stdout; never asserted. A run at full
size (every lesson, at least 40 students and 20 repeats) also rewrites its section of docs/benchmarks.md;
a smaller one, or `--no-write`, only prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench import (
    BIN,
    CLASS_SPEED_UP_GOAL,
    PAGE,
    ROOT,
    PageSection,
    Progress,
    Row,
    bench_class,
    command_line,
    cpu_burners,
    leaklab_marks,
    lessons,
    make_course,
    report,
    timed,
    verdict,
)

FULL_SIZE = {"--students": 40, "--repeat": 20}  # the class; a smaller run's figures are not quoted


def bench_under_load(slugs: list[str], *, repeat: int, jobs: int | None, say: Progress) -> Row:
    """Every solution graded `repeat` times while two busy loops take both cores: all full marks?"""
    with cpu_burners(2):
        with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
            course = Path(scratch) / "course"
            make_course(course, slugs, [f"student{number:03d}" for number in range(repeat)])
            say(f"under load: grading {repeat} x {len(slugs)} solutions beside 2 CPU burners")
            slots = ["--jobs", str(jobs)] if jobs is not None else []
            seconds = timed([BIN / "leaklab", "autograde", course, *slots, "--course", ROOT], cwd=ROOT)
            full, total = leaklab_marks(course)
            for line in (course / "leaklab" / "grades.jsonl").read_text(encoding="utf-8").splitlines():
                graded = json.loads(line)  # a solution that lost points: which tests, and why
                if graded["score"] < graded["max_score"]:
                    lost = {k: t["message"][:200] for k, t in graded["tests"].items() if t["score"] < t["max_score"]}
                    say(f"under load: {graded['student']} {graded['assignment']} {graded['score']:g}: {lost}")
    say(f"under load: {full} of {total} full marks in {seconds:.0f} s")
    return Row(
        f"under load (2 CPU burners): reference solutions with full marks, {repeat} x {len(slugs)}",
        f"{full} of {total}",
        "all",
        verdict(full == total == repeat * len(slugs)),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--students", type=int, default=40, help="students in the timed class (40)")
    parser.add_argument("--lessons", nargs="+", metavar="LESSON", help="lesson slugs (all)")
    parser.add_argument("--repeat", type=int, default=20, help="gradings of each solution under load (20)")
    parser.add_argument("--jobs", type=int, help="leaklab autograde's --jobs (default: its own)")
    parser.add_argument("--runs", type=int, default=1, help="timed runs of each side, interleaved (1)")
    parser.add_argument("--no-write", action="store_true", help=f"print only; leave {PAGE.relative_to(ROOT)} alone")
    args = parser.parse_args(argv)
    smaller = ["--lessons"] if args.lessons else []
    smaller += [flag for flag, size in FULL_SIZE.items() if getattr(args, flag[2:]) < size]
    args.lessons = args.lessons or lessons()
    unknown = sorted(set(args.lessons) - set(lessons()))
    if unknown:
        parser.error(f"no lesson {', '.join(unknown)}; lessons: {', '.join(lessons())}")
    if min(args.students, args.repeat, args.jobs or 1, args.runs) < 1:
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
            speed_up_goal=CLASS_SPEED_UP_GOAL,
        )
        return [*rows, bench_under_load(args.lessons, repeat=args.repeat, jobs=args.jobs, say=say)]

    section = None
    if smaller or args.no_write:
        why = f"smaller than full size ({', '.join(smaller)})" if smaller else "--no-write"
        print(f"bench-class: {why}: the table is printed only, {PAGE.relative_to(ROOT)} is left alone", file=sys.stderr)
    else:
        command = command_line("bench-class", "CLASS_ARGS", argv, "bench_class.py")
        section = PageSection("bench-class", "`make bench-class`: a class at full size, and under load", command)
    return report("bench-class", args.runs, measure, section=section)


if __name__ == "__main__":
    sys.exit(main())
