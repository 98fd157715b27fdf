"""Grade every red-team answer again and list the surprises: a RIGHT answer below full marks, a WRONG or
EVASIVE one at full marks.

    .venv/bin/python tests/redteam/regrade.py [LESSON_PREFIX ...] [--out FOLDER]

Each answer's cells go into a copy of its lesson's released exercise, as a learner would hand it in; all of
one lesson are graded by one `leaklab grade --json` (a few seconds each; the whole corpus takes about half
an hour on the 2-core VM). The graded results are kept in FOLDER (default .leaklab/redteam) for reading.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def handed_in(slug: str, cells: dict[str, str], path: Path) -> Path:
    """The released exercise of `slug` with its answer cells replaced by `cells` ("answer": its only one)."""
    nb = json.loads((ROOT / "exercises" / f"{slug}.ipynb").read_text(encoding="utf-8"))
    answers = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    for cell in answers:
        grade_id = cell["metadata"]["nbgrader"]["grade_id"]
        source = cells.get(grade_id, cells.get("answer") if len(answers) == 1 else None)
        if source is not None:
            cell["source"] = source
    path.write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson prefixes (01, 02_skipped_stop...): default all")
    parser.add_argument("--out", type=Path, default=ROOT / ".leaklab" / "redteam")
    parser.add_argument("--corpus", type=Path, default=HERE, help="the folder of a set (default: the first)")
    args = parser.parse_args(argv)
    surprises, graded = [], 0
    for corpus in sorted(args.corpus.glob("*.json")):
        slug = corpus.stem
        if args.lessons and not any(slug.startswith(prefix) for prefix in args.lessons):
            continue
        answers = json.loads(corpus.read_text(encoding="utf-8"))
        folder = args.out / slug
        folder.mkdir(parents=True, exist_ok=True)
        paths = [handed_in(slug, answer["cells"], folder / f"{name}.ipynb") for name, answer in answers.items()]
        print(f"{slug}: grading {len(paths)} answers", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "leaklab._cli", "grade", "--json", "--course", str(ROOT), *map(str, paths)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        results = json.loads(done.stdout)["results"]
        (folder / "results.json").write_text(json.dumps(dict(zip(answers, results, strict=True)), indent=1))
        for (name, answer), result in zip(answers.items(), results, strict=True):
            graded += 1
            full = result["score"] == result["max_score"]
            verdict = answer.get("decided", answer["verdict"])  # the project's, where it decided otherwise
            right = verdict.startswith("RIGHT")
            line = f"{slug} {name}: {verdict} {result['score']:g}/{result['max_score']:g}"
            print(line, file=sys.stderr)
            if full != right:
                surprises.append(f"{line} {result.get('reason') or ''}".rstrip())
    print(f"{graded} graded, {len(surprises)} surprises")
    print("\n".join(surprises))
    return 1 if surprises else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
