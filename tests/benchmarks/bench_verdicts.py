"""`make bench-verdicts`: is every verdict the same every time, under load?

    python tests/benchmarks/bench_verdicts.py [--rounds 20] [--lessons 01_forgotten_cancel ...] [--jobs 2]
                                              [--graders grade,autograde] [--no-burners] [--record FILE]

Every answer of the lessons' test answers (tests/answers*.py: right answers in several designs, wrong
answers a hurried learner writes, answers that evade the measurement) is handed in as the worked
notebook with its answer cell replaced, and graded `--rounds` times by `leaklab grade --json` and by
`leaklab autograde --force`, while two CPU burners keep both cores busy. A right answer must get full
marks every time, a wrong or evasive one less every time. The tests check each answer once; this
checks that the verdict does not depend on the machine's load or the drawn traffic's luck.

Printed as bench.py prints: progress on stderr, a Markdown table on stdout, every answer whose verdict
ever went the wrong way named; never asserted. About 45-55 minutes a round for all lessons on 2 cores: the
full 20 rounds take 15-18 hours (`--rounds 2` checks the script).

`--record FILE` keeps every finished round as one JSON line, keyed by a digest of what is measured (the
package, the grader's configuration, the English lessons and the answers, as committed: `MEASURED`): run
again with the same file, it counts the rounds already recorded for that digest and runs only the rest,
so the 20 rounds may span sessions and machines. A change to any of those files starts the count again.
The project's record is committed, `tests/benchmarks/verdicts.jsonl`: a machine's temp folder does not
outlive it. The
`grade` half hands its submissions to `--jobs` `leaklab grade` commands at once, the load of
`leaklab autograde --jobs`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import BIN, ROOT, Progress, Row, cpu_burners, lessons, make_course, table, verdict

sys.path.insert(0, str(ROOT / "tests"))

from catalog import CATALOG


def catalog(slugs: Sequence[str]) -> dict[str, tuple[str, bytes, bool]]:
    """Every answer as a submission: its name (`01-fix-buffered`) -> (lesson, notebook bytes, right?)."""
    found = {}
    for slug in slugs:
        for module, part, right, wrong in CATALOG[slug]:
            for name in f"{right} {wrong}".split():
                nb = json.loads((ROOT / "solutions" / f"{slug}.ipynb").read_text(encoding="utf-8"))
                ids = [cell["metadata"].get("nbgrader", {}).get("grade_id") for cell in nb["cells"]]
                nb["cells"][ids.index(f"{slug}_{part}")]["source"] = getattr(module, name)
                student = f"{slug[:2]}-{part}-{name.lower().replace('_', '-')}"
                found[student] = (slug, json.dumps(nb).encode(), name in right.split())
    return found


def right_verdict(score: float, max_score: float, right: bool) -> bool:
    return score == max_score if right else score < max_score


class CommandFailed(Exception):
    """A grading command that ended without its result: the round is not counted, and is run again."""

    def __init__(self, what: str, tail: list[str]) -> None:
        super().__init__(what)
        self.what, self.tail = what, tail


Graded = dict[str, tuple[float, float, str]]  # by student: score, max, and the tests that lost points


def lost(tests: dict[str, dict]) -> str:
    """The tests that lost points and their messages (a few lines each, where the problems are named): what
    a wrong-way verdict shows, and all a rare one leaves to find its cause by."""
    return "; ".join(
        f"{name}: {' / '.join((test.get('message') or '').strip().splitlines()[:6])[:600]}"
        for name, test in tests.items()
        if test.get("score", 0) < test.get("max_score", 0)
    )


def by_grade(submitted: dict[str, tuple[str, bytes, bool]], folder: Path, jobs: int) -> Graded:
    """`jobs` `leaklab grade --json` commands at once, each over a share of the submissions: (score, max, lost)
    by student."""
    paths = {}
    for student, (slug, data, _) in submitted.items():
        path = folder / student / f"{slug}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[student] = path
    shares = [share for share in (list(paths)[start::jobs] for start in range(jobs)) if share]
    logs = [folder / f"share-{index}.log" for index in range(len(shares))]
    commands = [
        subprocess.Popen(
            [BIN / "leaklab", "grade", "--json", *(str(paths[s]) for s in share)],
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            cwd=ROOT,
        )
        for share, log in zip(shares, logs, strict=True)
    ]
    try:
        outs = [command.communicate()[0] for command in commands]
    except BaseException:  # stopped (Ctrl-C, SIGTERM): the grading commands go too
        for command in commands:
            command.kill()
            command.wait()
        raise
    graded = {}
    for share, command, out, log in zip(shares, commands, outs, logs, strict=True):
        try:
            results = json.loads(out)["results"]
        except (ValueError, KeyError):
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
            raise CommandFailed(f"leaklab grade exited {command.returncode} without its JSON", tail) from None
        for student, r in zip(share, results, strict=True):
            graded[student] = (r["score"] or 0.0, r["max_score"] or 0.0, lost(r.get("tests") or {}))
    return graded


def by_autograde(course: Path, jobs: int) -> Graded:
    """One `leaklab autograde --force` of the course: (score, max, lost) by student, from its ledger."""
    subprocess.run(
        [BIN / "leaklab", "autograde", course, "--force", "--jobs", str(jobs), "--course", ROOT],
        capture_output=True,
        cwd=ROOT,
    )
    graded = {}
    for line in (course / "leaklab" / "grades.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        graded[row["student"]] = (row["score"], row["max_score"], lost(row.get("tests") or {}))  # the last line wins
    return graded


# What a grade depends on, as git pathspecs: the package (less what only builds the notebooks: its output,
# the worked solutions graded here, is measured), the grader's configuration (less the translated lab's
# font set-up), the English lessons (their authored sources and worked solutions; translations are not
# graded here), the answers, the pins.
MEASURED = (
    "src",
    ":(exclude)src/leaklab/_build.py",
    ":(exclude)src/leaklab/_translate.py",
    ":(exclude)src/leaklab/locales",  # the package's messages in other languages: words, never a verdict
    "grader",
    ":(exclude)grader/i18n",
    ":(glob)solutions/*.ipynb",
    ":(glob)notebooks/*.ipynb",
    "tests/answers*.py",
    "tests/catalog.py",
    "pyproject.toml",
    "requirements.lock",
)


def measured_digest() -> str:
    """What the verdicts depend on, as committed: a digest of `git ls-files -s` over MEASURED (a record of
    uncommitted files would name code nobody can find again)."""
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", *MEASURED], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    if dirty.strip():
        raise SystemExit(f"--record measures committed files only; uncommitted:\n{dirty}")
    listed = subprocess.run(
        ["git", "ls-files", "-s", "--", *MEASURED], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    return hashlib.sha256(listed.encode()).hexdigest()[:16]


def recorded(record: Path, digest: str, graders: Sequence[str], students: Sequence[str], burners: bool) -> list[dict]:
    """The rounds `record` holds for this digest, these answers and this load."""
    if not record.exists():
        return []
    rows = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        row
        for row in rows
        if row["digest"] == digest
        and row["grader"] in graders
        and row["burners"] == burners
        and sorted(row["students"]) == sorted(students)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="gradings of every answer by each grader (20)")
    parser.add_argument("--lessons", nargs="+", metavar="LESSON", help="lesson slugs (all)")
    parser.add_argument("--jobs", type=int, default=2, help="leaklab autograde's --jobs (2)")
    parser.add_argument("--graders", default="grade,autograde", help="grade, autograde or both (both)")
    parser.add_argument("--no-burners", action="store_true", help="without the two CPU burners")
    parser.add_argument("--record", type=Path, help="JSON lines of finished rounds, resumed from (none)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    slugs = args.lessons or lessons()
    unknown = [slug for slug in slugs if slug not in CATALOG]
    if unknown:
        parser.error(f"no answers catalogued for {', '.join(unknown)}; lessons: {', '.join(CATALOG)}")
    graders = [g for g in args.graders.split(",") if g]
    say = Progress()
    submitted = catalog(slugs)
    wrong_way: dict[str, dict[str, int]] = {grader: {} for grader in graders}
    crashes: list[str] = []
    digest = measured_digest() if args.record else ""
    done = {grader: 0 for grader in graders}
    for row in recorded(args.record, digest, graders, list(submitted), not args.no_burners) if args.record else []:
        done[row["grader"]] += 1
        for student, times in row["wrong_way"].items():
            wrong_way[row["grader"]][student] = wrong_way[row["grader"]].get(student, 0) + times
    if any(done.values()):
        say(f"{args.record}: " + ", ".join(f"{done[g]} rounds by leaklab {g}" for g in graders) + f" ({digest})")
    with cpu_burners(0 if args.no_burners else 2):
        with tempfile.TemporaryDirectory(prefix="bench-verdicts-") as scratch:
            course = Path(scratch) / "course"
            if "autograde" in graders:
                make_course(course, slugs, [])
                for student, (slug, data, _) in submitted.items():
                    folder = course / "submitted" / student / slug
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"{slug}.ipynb").write_bytes(data)
            for number in range(1, args.rounds + 1):
                for grader in graders:
                    if number <= done[grader]:
                        continue
                    say(f"round {number} of {args.rounds}: {len(submitted)} answers by leaklab {grader}")
                    started = time.monotonic()
                    scores = None
                    while scores is None:
                        try:
                            scores = (
                                by_grade(submitted, Path(tempfile.mkdtemp(dir=scratch, prefix="grade-")), args.jobs)
                                if grader == "grade"
                                else by_autograde(course, args.jobs)
                            )
                        except CommandFailed as failed:
                            crashes.append(f"round {number}, leaklab {grader}: {failed.what}")
                            say(f"  {failed.what}; its stderr ends:\n    " + "\n    ".join(failed.tail))
                            if len(crashes) > 3:
                                raise SystemExit(
                                    "more than three grading commands ended without their result"
                                ) from None
                            say("  the round is not counted; it runs again")
                    went_wrong, lost_points = {}, {}
                    for student, (_, _, right) in submitted.items():
                        score, most, why = scores.get(student, (0.0, -1.0, "not graded"))
                        if not right_verdict(score, most, right):
                            went_wrong[student] = 1
                            lost_points[student] = why  # kept in the record: the round's folders are temporary
                            wrong_way[grader][student] = wrong_way[grader].get(student, 0) + 1
                            say(f"  {student}: {score:g} of {most:g} ({'right' if right else 'wrong'} answer) {why}")
                    if args.record:
                        row = {
                            "digest": digest,
                            "grader": grader,
                            "round": number,
                            "burners": not args.no_burners,
                            "seconds": round(time.monotonic() - started),
                            "students": list(submitted),
                            "wrong_way": went_wrong,
                            "lost": lost_points,
                        }
                        with args.record.open("a", encoding="utf-8") as out:
                            out.write(json.dumps(row) + "\n")
    rights = sum(right for _, _, right in submitted.values())
    load = "without burners" if args.no_burners else "beside 2 CPU burners"
    rows = []
    for grader in graders:
        missed = wrong_way[grader]
        full = sum(1 for s, (_, _, right) in submitted.items() if right and s not in missed)
        less = sum(1 for s, (_, _, right) in submitted.items() if not right and s not in missed)
        rows.append(
            Row(
                f"leaklab {grader}: right answers at full marks in all {args.rounds} rounds, {load}",
                f"{full} of {rights}",
                "all",
                verdict(full == rights),
            )
        )
        wrongs = len(submitted) - rights
        rows.append(
            Row(
                f"leaklab {grader}: wrong or evasive answers below full marks in all {args.rounds} rounds",
                f"{less} of {wrongs}",
                "all",
                verdict(less == wrongs),
            )
        )
    print(table(rows))
    for crash in crashes:
        print(f"- {crash} (the round was run again)")
    for grader, missed in wrong_way.items():
        for student, times in sorted(missed.items()):
            print(f"- leaklab {grader}: {student} went the wrong way in {times} of {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
