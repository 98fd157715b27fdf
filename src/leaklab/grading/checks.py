"""The checks a submission passes before and beside its tests, the same for both front ends: is it a
notebook, of which lesson, with every answer cell, and with its test cells as released?"""

from __future__ import annotations

import json
from pathlib import Path

from .._errors import LeaklabError
from . import cells
from .results import Reason


class NotGradable(LeaklabError):
    """A submission that cannot be graded at all: `reason` for grades.csv, the message for a person."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_notebook(path: Path) -> dict:
    """A notebook's JSON, checked against the parts of the notebook format grading relies on."""
    if not path.exists():
        raise NotGradable(Reason.MISSING, f"no such file: {path}")
    if path.is_dir():
        raise NotGradable(Reason.UNREADABLE, f"{path} is a folder, not a notebook")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotGradable(Reason.UNREADABLE, f"{path} is not a notebook: it is not text") from None
    except OSError as exc:
        raise NotGradable(Reason.UNREADABLE, f"{path} cannot be read: {exc.strerror}") from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"{path} is not a notebook: invalid JSON ({exc.msg} at line {exc.lineno})"
        raise NotGradable(Reason.UNREADABLE, message) from None
    if not isinstance(nb, dict) or "cells" not in nb or "nbformat" not in nb:
        raise NotGradable(Reason.UNREADABLE, f"{path} is JSON but not a Jupyter notebook (no cells or nbformat)")
    if nb.get("nbformat") != 4:
        message = f"{path} is in notebook format {nb.get('nbformat')}: save it with Jupyter 4 or newer"
        raise NotGradable(Reason.UNREADABLE, message)
    if not _looks_valid(nb):  # the full schema check costs a third of a second: only to say what is wrong
        import nbformat

        try:
            nbformat.validate(nb)
        except nbformat.ValidationError as exc:
            raise NotGradable(Reason.UNREADABLE, f"{path} is not a valid notebook: {exc.message}") from None
    return nb


def _looks_valid(nb: dict) -> bool:
    return isinstance(nb["cells"], list) and all(
        isinstance(cell, dict)
        and cell.get("cell_type") in ("code", "markdown", "raw")
        and isinstance(cell.get("source"), str | list)
        and isinstance(cell.get("metadata"), dict)
        and isinstance(cell["metadata"].get("nbgrader", {}), dict)
        for cell in nb["cells"]
    )


def lesson_of(path: Path, submitted: dict, sources: dict[str, dict]) -> str:
    """The lesson a submission belongs to, among `sources` by slug: the one whose grade ids it carries
    (or whose name it has, if it carries none)."""
    mine = cells.grade_ids(submitted)
    for slug, source in sources.items():
        if mine & cells.grade_ids(source) or (path.stem == slug and not mine):
            return slug
    raise NotGradable(
        Reason.WRONG_ASSIGNMENT,
        f"{path} belongs to no known exercise: none of its cells carries a grade id of "
        f"{', '.join(sources) or 'any lesson'}",
    )


def check_assignment(submitted: dict, source: dict, assignment: str, others: list[str]) -> None:
    """Refuse a notebook of another assignment (saying which, if it can tell) for `assignment`."""
    mine = cells.grade_ids(submitted)
    if mine & cells.grade_ids(source):
        return
    belongs = [a for a in others if a != assignment and any(g.startswith(a + "_") for g in mine)]
    detail = f"this is a notebook of {belongs[0]}" if belongs else "none of its cells is from this assignment"
    raise NotGradable(Reason.WRONG_ASSIGNMENT, detail)


def missing_answers(submitted: dict, source: dict) -> list[str]:
    """The answer cells of the lesson that the submission no longer has."""
    return sorted(cells.grade_ids(source, answers_only=True) - cells.grade_ids(submitted))


def structure_problems(release: dict, submitted: dict) -> dict[str, str]:
    """Test cells a learner edited, deleted, re-typed, re-pointed or moved, by grade id: those tests
    score nothing (nbgrader alone would restore the cells and grade them as if nothing had happened)."""
    problems = {}
    ours, theirs = cells.test_cells(release), cells.test_cells(submitted)
    for grade_id, cell in ours.items():
        mine = theirs.get(grade_id)
        if mine is None:
            problems[grade_id] = f"test cell {grade_id} deleted"
        elif mine.get("cell_type") != cell.get("cell_type"):
            problems[grade_id] = f"test cell {grade_id} turned into {mine.get('cell_type')}"
        elif cells.text(mine).strip() != cells.text(cell).strip():
            problems[grade_id] = f"test cell {grade_id} edited"
        elif cells.meta(mine).get("points") != cells.meta(cell).get("points"):
            problems[grade_id] = f"points of {grade_id} changed"
    order = [g for g in theirs if g in ours]
    in_place = common_order(order, [g for g in ours if g in theirs])
    for grade_id in order:
        if grade_id not in in_place:
            problems.setdefault(grade_id, f"test cell {grade_id} moved")
    return problems


def common_order(mine: list[str], theirs: list[str]) -> set[str]:
    """The longest part of `mine` in the order of `theirs` (a longest common subsequence): what was not moved."""
    best: list[list[tuple[str, ...]]] = [[()] * (len(theirs) + 1) for _ in range(len(mine) + 1)]
    for i, a in enumerate(mine):
        for j, b in enumerate(theirs):
            best[i + 1][j + 1] = (*best[i][j], a) if a == b else max(best[i][j + 1], best[i + 1][j], key=len)
    return set(best[-1][-1])
