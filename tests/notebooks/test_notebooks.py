"""The lessons themselves: the solution runs clean, the generated copies match their source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("slug", LESSONS)
def test_the_solution_executes_top_to_bottom_without_an_error(slug, tmp_path):
    nb = nbformat.read(ROOT / "solutions" / f"{slug}.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the leak, and the fix beside it


def test_generated_copies_match_their_sources():
    done = subprocess.run(
        [sys.executable, "-m", "leaklab._cli", "build", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("slug", LESSONS)
def test_the_exercise_has_no_answer_and_no_hidden_test(slug):
    text = (ROOT / "exercises" / f"{slug}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "HIDDEN TESTS"):
        assert marker not in text
    assert "raise NotImplementedError()" in text


@pytest.mark.parametrize("slug", LESSONS)
def test_the_package_does_not_hold_the_answer(slug):
    source = json.loads((ROOT / "notebooks" / f"{slug}.ipynb").read_text())
    answer = next(c for c in source["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == f"{slug}_fix")
    regions = [
        part.split("### END SOLUTION", 1)[0] for part in "".join(answer["source"]).split("### BEGIN SOLUTION")[1:]
    ]
    package = "".join(p.read_text() for p in (ROOT / "src" / "leaklab").rglob("*.py"))

    def code_only(text: str) -> str:
        return " ".join(line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip())

    longest = max(regions, key=lambda region: len(code_only(region)))  # the heart of the answer
    assert code_only(longest) and code_only(longest) not in code_only(package)


@pytest.mark.parametrize("slug", LESSONS)
def test_every_test_cell_opens_with_a_docstring_and_has_points(slug):
    source = json.loads((ROOT / "notebooks" / f"{slug}.ipynb").read_text())
    tests = [c for c in source["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
    assert tests
    for cell in tests:
        meta = cell["metadata"]["nbgrader"]
        assert meta["grade_id"].startswith(slug + "_") and meta["points"] > 0 and meta["locked"]
        assert "".join(cell["source"]).startswith('"""')


@pytest.mark.parametrize("slug", LESSONS)
def test_nbgrader_validate_passes_the_solution_and_fails_the_exercise(slug, tmp_path):
    """What the learner's Validate button runs, with the course's nbgrader config."""
    nbgrader = [str(Path(sys.executable).with_name("nbgrader")), "validate"]

    def validate(folder: str) -> str:
        done = subprocess.run(
            [*nbgrader, str(ROOT / folder / f"{slug}.ipynb")], cwd=tmp_path, capture_output=True, text=True
        )
        return done.stdout + done.stderr

    assert "Success! Your notebook passes all the tests." in validate("solutions")
    failed = validate("exercises")
    assert "VALIDATION FAILED ON" in failed and "NotImplementedError" in failed
