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


def graded_by_cli(submissions: dict[str, Path], home: Path, *options: str, at_once: int = 2) -> dict[str, dict]:
    """`leaklab grade --json [options]` on every submission, with an empty HOME; results by name. The
    submissions are shared out between `at_once` commands run side by side, as `leaklab autograde --jobs`
    runs its jobs (the grades must not depend on what runs beside them; the suite takes half the time)."""
    names = list(submissions)
    shares = [names[i::at_once] for i in range(at_once) if names[i::at_once]]
    cli = [sys.executable, "-m", "leaklab._cli", "grade", "--json", *options]
    done = side_by_side([[*cli, *(str(submissions[n]) for n in share)] for share in shares], home)
    results: dict[str, dict] = {}
    for share, (_code, stdout, _stderr) in zip(shares, done, strict=True):
        results.update(zip(share, json.loads(stdout)["results"], strict=True))
    return {name: results[name] for name in names}


def side_by_side(commands: list[list[str]], home: Path) -> list[tuple[int, str, str]]:
    """Run `commands` at once from the checkout, with `home` as HOME; each one's exit code and output."""
    env = {**os.environ, "HOME": str(home)}
    running = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    outputs = [process.communicate(timeout=600) for process in running]
    return [(process.returncode, stdout, stderr) for process, (stdout, stderr) in zip(running, outputs, strict=True)]
