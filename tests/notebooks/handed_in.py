"""What the grading tests hand in (a lesson's worked notebook with its answer cell replaced), and how they
have it graded (`leaklab grade --json`, as a learner runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def with_answer(source: str, folder: Path, name: str, *, slug: str, cell_name: str = "fix") -> Path:
    """The worked notebook with its answer cell (`{slug}_{cell_name}`) replaced, as a learner would submit it."""
    nb = json.loads((ROOT / "solutions" / f"{slug}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == f"{slug}_{cell_name}":
            cell["source"] = source
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return path


def graded_by_cli(submissions: dict[str, Path], home: Path, *options: str) -> dict[str, dict]:
    """`leaklab grade --json [options]` on every submission in one call, with an empty HOME; results by name."""
    cli = [sys.executable, "-m", "leaklab._cli", "grade", "--json", *options, *map(str, submissions.values())]
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    results = json.loads(done.stdout)["results"]
    return dict(zip(submissions, results, strict=True))
