"""What the class grader prepares once for all its jobs (`scheduler._warm_up`) changes nothing they produce:
the feedback pages from templates compiled once are the pages nbconvert renders afresh, and the font list
is found where the grader's matplotlib keeps it even after a job has moved HOME."""

from __future__ import annotations

import nbformat
import pytest
from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from nbgrader.converters import GenerateFeedback

from leaklab.grading import kernel
from leaklab.grading.nbgrader_course import feedback_exporter


def graded_page() -> nbformat.NotebookNode:
    """A notebook as nbgrader's feedback shows one: markdown, code with output, a test cell with its score."""
    test = new_code_cell("assert True", outputs=[new_output("stream", name="stdout", text="ok\n")])
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "t1", "points": 2, "score": 1, "solution": False}
    return new_notebook(
        cells=[new_markdown_cell("# Lesson\n\n*words* and `code`"), new_code_cell("print(1)"), test],
        metadata={"language_info": {"name": "python", "pygments_lexer": "ipython3"}},
    )


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_a_feedback_page_from_compiled_templates_is_the_page_nbconvert_renders(root, language):
    converter = GenerateFeedback()
    if language != "en":  # as NbgraderCourse picks a lesson's translated template
        converter.config.HTMLExporter.extra_template_basedirs = [str(root / "grader" / "i18n" / language)]
    scores = {"nbgrader": {"notebook": "lesson", "score": 1, "max_score": 2, "late_penalty": 0}}
    notebook = graded_page()

    def page(exporter: type) -> str:
        return exporter(parent=converter, config=converter.config).from_notebook_node(notebook, dict(scores))[0]

    fresh = page(HTMLExporter)
    assert page(feedback_exporter()) == fresh  # compiled now, or kept from an earlier test
    assert page(feedback_exporter()) == fresh  # kept
    assert ("得分" in fresh) is (language == "zh_CN")


def test_the_font_list_is_found_where_the_graders_matplotlib_keeps_it_after_home_moves(tmp_path, monkeypatch):
    for name in ("MPLCONFIGDIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "grader"))
    kernel.font_cache.cache_clear()
    try:
        found = kernel.font_cache()  # a new machine: built there once
        assert found == tmp_path / "grader" / ".cache" / "matplotlib"
        assert list(found.glob("fontlist-*.json"))
        monkeypatch.setenv("HOME", str(tmp_path / "job"))  # as a class job does before its kernel starts
        (tmp_path / "kernel").mkdir()
        assert [p.name for p in kernel._copy_font_cache(tmp_path / "kernel")] == [
            p.name for p in found.glob("fontlist-*.json")
        ]
    finally:
        kernel.font_cache.cache_clear()
