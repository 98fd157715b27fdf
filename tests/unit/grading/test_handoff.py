"""The grader-to-kernel hand-off (`grading.handoff`): the kernel's copy of a lesson carries no hidden test,
and shows the grader's own verdict where they were."""

from __future__ import annotations

import json
import threading

import pytest

from leaklab.grading import cells, handoff

SLUG = "04_lifeless_pool"


def test_the_kernels_copy_has_no_hidden_test_and_names_each_test_where_they_were(root):
    source = json.loads((root / "notebooks" / f"{SLUG}.ipynb").read_text())
    version = handoff.kernel_version(source)
    text = json.dumps(version)
    assert "HIDDEN" not in text and "jobs=50" not in text  # the hidden tests' options
    for grade_id, cell in cells.test_cells(version).items():
        assert f"hidden_part({grade_id!r})" in cells.text(cell)
    assert "BEGIN HIDDEN TESTS" in json.dumps(source)  # the source itself is left alone


def test_a_hidden_part_fails_as_the_graders_run_failed_it_and_passes_otherwise(tmp_path, monkeypatch):
    path = tmp_path / "runs.json"
    verdicts = {"a": {"passed": False, "message": "stop waits for workers: 0 of 1 checks"}, "b": {"passed": True}}
    done = threading.Event()
    done.set()
    handoff.publish(path, dict, lambda: verdicts, after=done)
    monkeypatch.setenv(handoff.ENV, str(path))
    with pytest.raises(AssertionError, match="hidden tests: stop waits for workers: 0 of 1 checks"):
        handoff.hidden_part("a")
    handoff.hidden_part("b")
    handoff.hidden_part("not_measured")  # nothing to show: the kernel's run can only take points away


def test_a_file_of_another_schema_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"schema": 1, "runs": {"k": {}}, "tests": {"a": {"passed": False}}}))
    monkeypatch.setenv(handoff.ENV, str(path))
    assert handoff.published() == {}
    handoff.hidden_part("a")


@pytest.mark.parametrize("slug", ["04_lifeless_pool", "08_week_in_production"])
def test_the_runs_are_handed_over_right_after_the_last_answer_cell(root, slug):
    """The verify cell after the answer shows the grader's measurement: the kernel never measures again."""
    import asyncio

    source = json.loads((root / "notebooks" / f"{slug}.ipynb").read_text())
    fired: list[int] = []
    hook = handoff.before_first_test(lambda: fired.append(index), handoff.last_answer(source))
    answers = [i for i, cell in enumerate(source["cells"]) if cells.is_answer(cell)]
    for index, cell in enumerate(source["cells"]):
        asyncio.run(hook(cell, index))
    first_test = next(i for i, cell in enumerate(source["cells"]) if cells.is_test(cell))
    assert fired == [min(answers[-1] + 1, first_test)]  # 08's diagnosis is tested before its fix is written
    assert handoff.last_answer(source) == f"{slug}_fix"
