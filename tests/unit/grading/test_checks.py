"""The checks a submission passes beside its tests (`grading.checks`): readable, of which lesson, with
its answer cells, and its test cells as released."""

from __future__ import annotations

import copy
import json

import pytest

from leaklab.grading.checks import (
    NotGradable,
    check_assignment,
    common_order,
    lesson_of,
    missing_answers,
    read_notebook,
    structure_problems,
)
from leaklab.grading.results import Reason

SLUG = "04_lifeless_pool"


@pytest.fixture
def release(root) -> dict:
    return json.loads((root / "solutions" / f"{SLUG}.ipynb").read_text())


def cell(nb: dict, what: str) -> dict:
    return next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == f"{SLUG}_{what}")


def test_an_untouched_notebook_has_no_structure_problem(release):
    assert structure_problems(release, copy.deepcopy(release)) == {}


def test_each_tampered_test_cell_is_named_with_what_was_done(release):
    mine = copy.deepcopy(release)
    cell(mine, "no_worker_survives")["source"] = "pass\n"
    mine["cells"].remove(cell(mine, "stop_waits_for_workers"))
    cell(mine, "failure_keeps_worker")["cell_type"] = "markdown"
    cell(mine, "every_job_accounted_for")["metadata"]["nbgrader"]["points"] = 20
    assert structure_problems(release, mine) == {
        f"{SLUG}_no_worker_survives": f"test cell {SLUG}_no_worker_survives edited",
        f"{SLUG}_stop_waits_for_workers": f"test cell {SLUG}_stop_waits_for_workers deleted",
        f"{SLUG}_failure_keeps_worker": f"test cell {SLUG}_failure_keeps_worker turned into markdown",
        f"{SLUG}_every_job_accounted_for": f"points of {SLUG}_every_job_accounted_for changed",
    }


def test_a_moved_test_cell_is_the_only_one_named(release):
    mine = copy.deepcopy(release)
    last = cell(mine, "no_worker_survives")
    mine["cells"].remove(last)
    mine["cells"].insert(mine["cells"].index(cell(mine, "stop_waits_for_workers")), last)
    moved = f"{SLUG}_no_worker_survives"
    assert structure_problems(release, mine) == {moved: f"test cell {moved} moved"}


def test_common_order_keeps_the_longest_run_in_order():
    assert common_order(list("dabc"), list("abcd")) == set("abc")
    assert common_order(list("abcd"), list("abcd")) == set("abcd")
    assert len(common_order(list("ba"), list("ab"))) == 1


@pytest.mark.parametrize(
    ("content", "reason", "words"),
    [
        (None, Reason.MISSING, "no such file"),
        (b"", Reason.UNREADABLE, "invalid JSON"),
        (b"\xff\xfe", Reason.UNREADABLE, "not text"),
        (b"[]", Reason.UNREADABLE, "not a Jupyter notebook"),
        (b'{"cells": [], "nbformat": 3}', Reason.UNREADABLE, "notebook format 3"),
        (b'{"cells": [{"cell_type": "code"}], "nbformat": 4, "metadata": {}}', Reason.UNREADABLE, "not a valid"),
    ],
)
def test_a_notebook_that_cannot_be_read_says_why_with_a_reason(tmp_path, content, reason, words):
    path = tmp_path / "handed_in.ipynb"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(NotGradable, match=words) as refused:
        read_notebook(path)
    assert refused.value.reason is reason


def test_the_lesson_is_found_by_its_grade_ids_and_another_lessons_notebook_is_named(root, tmp_path):
    sources = {
        slug: json.loads((root / "notebooks" / f"{slug}.ipynb").read_text()) for slug in (SLUG, "01_forgotten_cancel")
    }
    theirs = json.loads((root / "exercises" / "01_forgotten_cancel.ipynb").read_text())
    assert lesson_of(tmp_path / "x.ipynb", theirs, sources) == "01_forgotten_cancel"
    with pytest.raises(NotGradable, match="this is a notebook of 01_forgotten_cancel") as refused:
        check_assignment(theirs, sources[SLUG], SLUG, list(sources))
    assert refused.value.reason is Reason.WRONG_ASSIGNMENT
    with pytest.raises(NotGradable, match="belongs to no known exercise"):
        lesson_of(tmp_path / "x.ipynb", {"cells": []}, sources)


def test_a_deleted_answer_cell_is_named(root, release):
    source = json.loads((root / "notebooks" / f"{SLUG}.ipynb").read_text())
    assert missing_answers(release, source) == []
    release["cells"].remove(cell(release, "fix"))
    assert missing_answers(release, source) == [f"{SLUG}_fix"]
