"""What a notebook cell is to the grader, answered in one place (as nbgrader's `utils` does), so that
every part agrees: a cell marked both graded and answer is an answer cell, never a test cell."""

from __future__ import annotations

import re

# A test cell's hidden part, as nbgrader marks it (its own ClearHiddenTests removes the same block).
HIDDEN_TESTS = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)


def meta(cell: dict) -> dict:
    """The cell's nbgrader metadata ({} if it has none, or none that is a mapping)."""
    found = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell.get("metadata"), dict) else {}
    return found if isinstance(found, dict) else {}


def text(cell: dict) -> str:
    """The cell's source as one string (on disk it may be a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def grade_id(cell: dict) -> str | None:
    found = meta(cell).get("grade_id")
    return found if isinstance(found, str) else None


def is_answer(cell: dict) -> bool:
    """A cell the learner writes (nbgrader's solution cell)."""
    return bool(meta(cell).get("solution"))


def is_test(cell: dict) -> bool:
    """An autograded test cell: graded, and not an answer."""
    return bool(meta(cell).get("grade")) and not is_answer(cell)


def is_locked(cell: dict) -> bool:
    """A read-only cell of the lesson's own (its set-up, its tests)."""
    return bool(meta(cell).get("locked")) and not is_answer(cell)


def is_restored(cell: dict) -> bool:
    """A cell autograde puts back from the source whatever the learner did to it: tests and locked cells."""
    return grade_id(cell) is not None and (is_test(cell) or is_locked(cell))


def is_setup(cell: dict) -> bool:
    """A locked code cell that is no test: the lesson's imports, which the grader's own run executes too."""
    return cell.get("cell_type") == "code" and is_locked(cell) and not is_test(cell)


def points(cell: dict) -> float:
    return float(meta(cell).get("points", 0) or 0)


def grade_ids(nb: dict, *, answers_only: bool = False) -> set[str]:
    """The grade ids a notebook's cells carry; with `answers_only`, of its answer cells."""
    return {
        grade_id(cell)  # type: ignore[misc]
        for cell in nb.get("cells", [])
        if grade_id(cell) is not None and (is_answer(cell) or not answers_only)
    }


def test_cells(nb: dict) -> dict[str, dict]:
    """The notebook's test cells by grade id, in order."""
    return {grade_id(cell): cell for cell in nb.get("cells", []) if is_test(cell)}  # type: ignore[misc]


def max_score(nb: dict) -> float:
    """The points of every test cell."""
    return sum(points(cell) for cell in test_cells(nb).values())
