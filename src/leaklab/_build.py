"""Generate the learner's and the worked copies of every lesson from its one authored source.

`exercises/` gets nbgrader's student version (answers replaced by stubs, hidden tests removed);
`solutions/` gets the source without hidden tests or solution markers, executed, with its plots.
Neither is edited by hand: `check` says where a committed copy no longer matches its source.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path

import nbformat

from ._errors import LeaklabError
from ._repo import lessons
from .grading import cells
from .grading.kernel import encrypted_kernels
from .grading.nbgrader_course import temporary_course

_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.M)


def solution_skeleton(source: dict) -> dict:
    """The source without hidden tests, solution markers or outputs: what `solutions/` holds, unexecuted."""
    nb = copy.deepcopy(source)
    for cell in nb["cells"]:
        text = cells.text(cell)
        cell["source"] = _MARKER.sub("", cells.HIDDEN_TESTS.sub("", text)).rstrip("\n")
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def _normalised(nb: dict) -> str:
    return nbformat.writes(nbformat.from_dict(nb)) + "\n"


def _execute(nb: dict, folder: Path) -> dict:
    from nbclient import NotebookClient

    node = nbformat.from_dict(nb)
    resources = {"metadata": {"path": str(folder)}}
    NotebookClient(
        node, timeout=120, kernel_name="python3", resources=resources, kernel_manager_class=encrypted_kernels()
    ).execute()
    return node


def _cells_of(nb: dict) -> list[tuple[str, str, str]]:
    return [
        (c["cell_type"], cells.text(c), json.dumps(c.get("metadata", {}).get("nbgrader"), sort_keys=True))
        for c in nb["cells"]
    ]


def build(
    course: Path,
    *,
    only: list[str] | None = None,
    check: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Write (or, with `check`, compare) every lesson's exercise and solution (or `only` those named);
    returns the drifts found."""
    known = lessons(course)
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise LeaklabError(f"no lesson named {', '.join(unknown)} in notebooks/; lessons: {', '.join(known)}")
    drifts = []
    with temporary_course(course) as temp:
        for slug, source_path in known.items():
            if only and slug not in only:
                continue
            source = json.loads(source_path.read_text(encoding="utf-8"))
            exercise_path = course / "exercises" / f"{slug}.ipynb"
            solution_path = course / "solutions" / f"{slug}.ipynb"
            exercise = _normalised(nbformat.read(temp.generate(slug, source_path), as_version=4))
            skeleton = solution_skeleton(source)
            if check:
                drifts += _exercise_drift(exercise_path, exercise) + _solution_drift(solution_path, skeleton)
                continue
            progress(f"{slug}: writing {exercise_path.relative_to(course)}")
            exercise_path.write_text(exercise, encoding="utf-8")
            progress(f"{slug}: executing {solution_path.relative_to(course)}")
            solution_path.write_text(_normalised(_execute(skeleton, solution_path.parent)), encoding="utf-8")
    return drifts


def _exercise_drift(path: Path, expected: str) -> list[str]:
    if not path.exists():
        return [f"{path.name}: missing from exercises/"]
    return [] if path.read_text(encoding="utf-8") == expected else [f"exercises/{path.name}: differs from its source"]


def _solution_drift(path: Path, skeleton: dict) -> list[str]:
    if not path.exists():
        return [f"{path.name}: missing from solutions/"]
    committed = json.loads(path.read_text(encoding="utf-8"))
    if _cells_of(committed) != _cells_of(skeleton):
        return [f"solutions/{path.name}: its cells differ from its source"]
    code = [c for c in committed["cells"] if c["cell_type"] == "code"]
    if any(c.get("execution_count") is None for c in code):
        return [f"solutions/{path.name}: not executed"]
    if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])):
        return [f"solutions/{path.name}: a cell ended with an error"]
    return []
