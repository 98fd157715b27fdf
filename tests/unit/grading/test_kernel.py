"""The kernel's run as the grader reads it (`grading.kernel`): test cells restored, scored, and outputs cut
to size."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from leaklab import Recording
from leaklab._plotting import figure_data
from leaklab.grading import settings
from leaklab.grading.handoff import PLOT_MIME
from leaklab.grading.kernel import capped, drawn, restored, scored
from leaklab.grading.results import Reason


def graded_cell(grade_id: str, outputs: list[dict], source: str = "assert True") -> dict:
    meta = {"grade": True, "grade_id": grade_id, "locked": True, "points": 2, "solution": False}
    return {"cell_type": "code", "source": source, "metadata": {"nbgrader": meta}, "outputs": outputs}


def notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def test_a_test_cell_with_an_error_loses_its_points_with_the_errors_message_and_reason():
    nb = notebook(
        graded_cell("a", []),
        graded_cell("b", [{"output_type": "error", "ename": "AssertionError", "evalue": "0 of 1", "traceback": []}]),
        graded_cell("c", [{"output_type": "error", "ename": "CellTimeoutError", "evalue": "", "traceback": []}]),
    )
    results = scored(nb)
    assert [results[k].score for k in "abc"] == [2, 0, 0]
    assert results["b"].message == "AssertionError: 0 of 1" and results["b"].reason is None
    assert results["c"].reason is Reason.TIMEOUT and "per-cell timeout" in results["c"].message


def test_a_name_the_tests_miss_is_put_down_to_the_answer_cell_above_that_raised():
    meta = {"grade_id": "diagnosis", "solution": True}
    raised = {"output_type": "error", "ename": "StopIteration", "evalue": "", "traceback": []}
    missing = {"output_type": "error", "ename": "NameError", "evalue": "name 'LINE' is not defined", "traceback": []}
    nb = notebook(
        {"cell_type": "code", "source": "next(iter([]))", "metadata": {"nbgrader": meta}, "outputs": [raised]},
        graded_cell("a", [missing]),
        graded_cell("b", [{"output_type": "error", "ename": "AssertionError", "evalue": "no", "traceback": []}]),
    )
    results = scored(nb)
    said = "NameError: name 'LINE' is not defined (the answer cell diagnosis raised StopIteration)"
    assert results["a"].message == said
    assert results["b"].message == "AssertionError: no"  # another failure is the test's own


def test_cells_the_kernel_never_ran_after_a_timeout_say_so_and_the_others_say_they_failed_silently():
    """nbclient marks a cell failed without an error output when the kernel, still busy with a cell that
    ran past its timeout, never ran it: the learner is told that, not "no message"."""
    timeout = {"output_type": "error", "ename": "CellTimeoutError", "evalue": "No reply", "traceback": []}
    nb = notebook(graded_cell("a", []), graded_cell("b", [timeout]), graded_cell("c", []), graded_cell("d", []))
    results = scored(nb, failed={0: "", 2: ""})
    assert "failed without an error message" in results["a"].message and results["a"].reason is None
    assert results["b"].message == "CellTimeoutError: No reply"
    assert "still busy with an earlier one" in results["c"].message and results["c"].reason is Reason.TIMEOUT
    assert results["d"].score == 2


def test_a_cell_whose_reply_says_it_timed_out_says_so_though_it_has_no_error_output():
    """nbclient's reply to a cell it gave up on carries CellTimeoutError, and the cell may have no output:
    the cell ran past its timeout, and the cells after it were never run."""
    nb = notebook(graded_cell("a", []), graded_cell("b", []), graded_cell("c", []))
    results = scored(nb, failed={0: "CellTimeoutError", 1: "CellTimeoutError"})
    assert "per-cell timeout" in results["a"].message and results["a"].reason is Reason.TIMEOUT
    assert "still busy with an earlier one" in results["b"].message and results["b"].reason is Reason.TIMEOUT
    assert results["c"].score == 2


def test_restored_puts_back_the_sources_test_cells_and_clears_outputs():
    source = notebook(graded_cell("a", [], source="assert answer() == 1"))
    submitted = notebook(graded_cell("a", [stream("old")], source="pass"))
    nb = restored(source, submitted)
    assert nb["cells"][0]["source"] == "assert answer() == 1" and nb["cells"][0]["outputs"] == []
    assert submitted["cells"][0]["source"] == "pass"  # the submission itself is left alone


def test_outputs_of_a_lesson_are_kept_as_they_are():
    image = {"output_type": "display_data", "data": {"image/png": "x" * 100_000}, "metadata": {}}
    nb = notebook(graded_cell("a", [stream("a few lines\n" * 20), image]))
    assert capped(copy.deepcopy(nb)) == nb


def test_a_print_bomb_an_image_bomb_and_a_huge_error_are_cut_with_a_note_and_the_error_still_fails():
    huge_text = "x" * (settings.CELL_TEXT_BYTES * 4)
    bomb = {
        "output_type": "display_data",
        "data": {"image/png": "y" * (settings.OUTPUT_ITEM_BYTES + 1)},
        "metadata": {},
    }
    error = {"output_type": "error", "ename": "ValueError", "evalue": "z" * 10**6, "traceback": ["t" * 10**6]}
    nb = nbformat.from_dict(notebook(graded_cell("a", [stream(huge_text), bomb]), graded_cell("b", [error])))
    cut = capped(nb)
    text, note = cut["cells"][0]["outputs"]
    assert len(text["text"]) < settings.CELL_TEXT_BYTES + 200 and "output cut at 64 KiB" in text["text"]
    assert note["output_type"] == "stream" and "left out" in note["text"] and note.text  # still a NotebookNode
    assert len(cut["cells"][1]["outputs"][0]["evalue"]) < 5000
    assert scored(cut)["b"].score == 0 and scored(cut)["b"].message.startswith("ValueError: zzz")


def test_the_whole_notebook_is_capped_too():
    cells = [graded_cell(f"c{i}", [stream("w" * (settings.CELL_TEXT_BYTES - 100))]) for i in range(400)]
    cut = capped(notebook(*cells))
    total = sum(len(o["text"]) for cell in cut["cells"] for o in cell["outputs"])
    assert total < settings.NOTEBOOK_OUTPUT_BYTES + 400 * 200


def test_a_kernel_whose_messages_cannot_be_read_fails_that_submission_only(tmp_path, monkeypatch):
    import nbclient

    from leaklab.grading import kernel

    def garbled(self):  # as jupyter_client reads a message whose frames an answer garbled
        raise ValueError("Invalid Signature: b'stream.stderr'")

    monkeypatch.setattr(nbclient.NotebookClient, "execute", garbled)
    monkeypatch.setattr(kernel.sandbox, "active", lambda: False)
    run = kernel.run_notebook(notebook(), notebook(), tmp_path, before_tests=lambda: None)
    assert run.tests == {} and run.failure is not None
    assert run.failure[0] is Reason.KERNEL_DIED and "Invalid Signature" in run.failure[1]


def plain_cell(source: str) -> dict:
    return {"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}


@pytest.fixture
def asked(monkeypatch) -> Iterator[list[bool]]:
    """What each request for the kernel's info after a timed-out cell found: answered or not. The kernel
    runs here, in the test's process: the executor thread of the loop it ran on is shut down after."""
    from jupyter_core.utils import ensure_event_loop

    from leaklab.grading import kernel

    found: list[bool] = []
    original = kernel.GivesUpOnASilentKernel._answers

    async def answers(self) -> bool:
        found.append(await original(self))
        return found[-1]

    monkeypatch.setattr(kernel.GivesUpOnASilentKernel, "_answers", answers)
    monkeypatch.setitem(settings.KERNEL_RUN, "timeout", 3)
    monkeypatch.setattr(kernel.sandbox, "active", lambda: False)
    executor = ThreadPoolExecutor(1)
    ensure_event_loop().set_default_executor(executor)  # the hand-off before the first test uses it
    yield found
    executor.shutdown(wait=True)
    ensure_event_loop().set_default_executor(ThreadPoolExecutor(1))  # no thread until it is used


def test_a_kernel_that_answers_after_its_interrupt_runs_the_next_cells_in_full(tmp_path, asked):
    from leaklab.grading import kernel

    nb = notebook(plain_cell("import time\ntime.sleep(30)"), graded_cell("a", []), graded_cell("b", []))
    run = kernel.run_notebook(nb, nb, tmp_path, before_tests=lambda: None)
    assert asked == [True]  # interrupted, then it answered: the tests below ran as usual
    assert {k: t.score for k, t in run.tests.items()} == {"a": 2, "b": 2}


def test_a_kernel_silent_after_its_interrupt_fails_every_later_cell_without_waiting_for_each(
    tmp_path, monkeypatch, asked
):
    from leaklab.grading import kernel

    monkeypatch.setattr(settings, "SILENT_KERNEL_S", 5.0)
    deaf = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.05)"
    nb = notebook(plain_cell(deaf), *(graded_cell(name, []) for name in "abc"))
    run = kernel.run_notebook(nb, nb, tmp_path, before_tests=lambda: None)
    assert asked == [False]  # asked once; every later cell then had the shortest timeout
    assert {k: t.score for k, t in run.tests.items()} == {"a": 0, "b": 0, "c": 0}


def figure_output(spec: object) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {PLOT_MIME: spec, "text/plain": "[figure: t]"}}


def test_figures_a_kernel_showed_as_data_are_drawn_and_anything_else_said(monkeypatch):
    # GIVEN a graded notebook whose kernel showed two figures' data, one data that is no figure's, and one
    # figure more than the grader draws for a notebook,
    monkeypatch.setattr(settings, "DRAWN_FIGURES", 3)
    run = Recording("leaky", capture=None, times_ms=[0.0, 1.0], tasks=[0, 2], memory_times_ms=[0.0], heap_bytes=[0])  # type: ignore[arg-type]
    good = figure_data(run, title="t")
    outputs = [figure_output(good), figure_output({"runs": "x"}), figure_output(good), figure_output(good)]
    nb = drawn(nbformat.from_dict(notebook(graded_cell("a", outputs[:2]), graded_cell("b", outputs[2:]))))
    # WHEN the grader keeps its outputs, THEN the figures are PNGs, the rest a line each; no data is left.
    shown = [output["data"] for cell in nb["cells"] for output in cell["outputs"]]
    assert [PLOT_MIME in data for data in shown] == [False] * 4
    assert [base64.b64decode(data["image/png"])[:4] for data in (shown[0], shown[2])] == [b"\x89PNG"] * 2
    assert shown[1]["text/plain"].startswith("[leaklab: a figure that could not be drawn")
    assert "image/png" not in shown[3] and "over 3 in one notebook" in shown[3]["text/plain"]
