"""What the grading tests hand in: a lesson's worked notebook with its answer cell replaced."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def with_answer(source: str, folder: Path, name: str, *, slug: str) -> Path:
    """The worked notebook with its answer cell replaced, as a learner would submit it."""
    nb = json.loads((ROOT / "solutions" / f"{slug}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == f"{slug}_fix":
            cell["source"] = source
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return path
