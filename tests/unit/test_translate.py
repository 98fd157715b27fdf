"""Translations: one catalog message per cell, fuzzy when the English moves, code that cannot change."""
# ruff: noqa: RUF001 (Chinese text has full-width punctuation)

from __future__ import annotations

from pathlib import Path

import pytest

from leaklab._errors import LeaklabError
from leaklab._translate import catalog_path, languages, problem, stale, translated, units, update

ROOT = Path(__file__).resolve().parents[2]


def cell(kind: str, cell_id: str, source: str, **nbgrader: object) -> dict:
    found = {"cell_type": kind, "id": cell_id, "metadata": {"nbgrader": nbgrader} if nbgrader else {}, "source": source}
    if kind == "code":
        found |= {"outputs": [], "execution_count": None}
    return found


SETUP = cell("code", "setup", "import asyncio", grade_id="x_setup", grade=False, solution=False, locked=True)
STORY = cell("markdown", "story", "## 1. The story\n\nA task that [never ends](../docs/glossary.md).")
RUN = cell("code", "run", 'n = 3  # three requests\nprint(f"{n} requests, {n * 2} replies")')
PLAIN = cell("code", "plain", "n + 1")
ANSWER_SOURCE = (
    'def fix():\n    """Stub docstring."""\n    ### BEGIN SOLUTION\n    return 1  # one\n    ### END SOLUTION\n'
)
ANSWER = cell("code", "answer", ANSWER_SOURCE, grade_id="x_fix", grade=False, solution=True, locked=False)
TEST = cell(
    "code",
    "test",
    '"""(a) Nothing is left behind."""\nassert fix() == 1\n',
    grade_id="x_test",
    grade=True,
    solution=False,
    locked=True,
    points=1,
)


def lesson(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout with one lesson and no translations yet."""
    (tmp_path / "notebooks").mkdir()
    return tmp_path


def translate_all(checkout: Path, source: dict, strings: dict[str, str]) -> None:
    from babel.messages.pofile import read_po, write_po

    path = catalog_path(checkout, "zh_CN", "01_x")
    catalog = read_po(path.open("rb"), locale="zh_CN")
    for message in catalog:
        if message.context in strings:
            message.string = strings[message.context]
            message.flags.discard("fuzzy")
    with path.open("wb") as out:
        write_po(out, catalog, width=0, no_location=True, include_previous=True)


ZH = {
    "story": "## 1. 故事\n\n一个[永不结束](../docs/glossary.md)的任务。",
    "run": 'n = 3  # 三个请求\nprint(f"{n * 2} 个回复，{n} 个请求")',
    "answer": ANSWER_SOURCE.replace("# one", "# 一"),
    "test": "（a）不留下任何东西。",
}


def test_units_are_the_cells_a_reader_reads_and_leave_out_what_nbgrader_checksums():
    source = lesson(SETUP, STORY, RUN, PLAIN, ANSWER, TEST)
    assert [(u.context, u.kind) for u in units(source)] == [
        ("story", "markdown"),
        ("run", "code"),
        ("answer", "answer"),
        ("test", "test"),
    ]
    assert units(source)[-1].text == "(a) Nothing is left behind."


@pytest.mark.parametrize(
    "translation",
    [
        'n = 3  # 三个请求\nprint(f"{n * 2} 个回复，{n} 个请求")',  # words reordered around the same values
        'n = 3\nprint(f"{n} 个请求，{n * 2} 个回复")',  # a comment dropped
    ],
)
def test_a_code_translation_may_change_comments_and_words_only(translation):
    [unit] = [u for u in units(lesson(RUN)) if u.context == "run"]
    assert problem(unit, translation) is None


@pytest.mark.parametrize(
    ("translation", "why"),
    [
        ('n = 4  # 三个请求\nprint(f"{n} 个请求，{n * 2} 个回复")', "code differs"),
        ('n = 3\nprint(f"{n} 个请求，{n * 3} 个回复")', "code differs"),
        ('n = 3\nprint(f"{n} 个请求")', "code differs"),
        ('n = 3\nprint(f"{n} 个请求"', "no longer valid Python"),
    ],
)
def test_a_code_translation_that_changes_the_code_is_refused(translation, why):
    [unit] = [u for u in units(lesson(RUN)) if u.context == "run"]
    assert why in problem(unit, translation)


def test_an_answer_translation_may_not_touch_the_learners_stub():
    [unit] = units(lesson(ANSWER))
    assert problem(unit, ZH["answer"]) is None
    assert "outside ### BEGIN SOLUTION" in problem(unit, ZH["answer"].replace("Stub docstring.", "桩。"))


def test_an_english_edit_leaves_the_translation_fuzzy_beside_its_old_english(checkout):
    # GIVEN a lesson whose every cell is translated
    source = lesson(SETUP, STORY, RUN, ANSWER, TEST)
    update(checkout, "zh_CN", "01_x", source)
    translate_all(checkout, source, ZH)
    assert stale(checkout, "zh_CN", "01_x", source) == []
    # WHEN the English story changes, a cell is added and one is removed
    edited = lesson(
        SETUP, cell("markdown", "story", STORY["source"] + " Twice."), RUN, TEST, cell("markdown", "new", "New.")
    )
    counts = update(checkout, "zh_CN", "01_x", edited)
    # THEN the story keeps its translation, marked fuzzy, with the English it was made from
    assert counts == {"cells": 4, "fuzzy": 1, "untranslated": 1}
    text = catalog_path(checkout, "zh_CN", "01_x").read_text(encoding="utf-8")
    assert "#, fuzzy\n#| msgid" in text and "一个[永不结束]" in text
    assert "# 一" not in text  # the answer cell's message went with its cell
    catalog = "notebooks/locales/zh_CN/LC_MESSAGES/01_x.po"
    assert stale(checkout, "zh_CN", "01_x", edited) == [
        f"{catalog}: cell story: fuzzy (its English changed: translate it again, then clear the flag)",
        f"{catalog}: cell new: not translated",
    ]


def test_a_stale_catalog_names_its_cells_and_is_not_built(checkout):
    source = lesson(STORY, RUN)
    assert stale(checkout, "zh_CN", "01_x", source) == [
        "notebooks/locales/zh_CN/LC_MESSAGES/01_x.po: missing (`make translations` makes it)"
    ]
    update(checkout, "zh_CN", "01_x", source)
    translate_all(checkout, source, {"story": ZH["story"], "run": "n = 4"})
    with pytest.raises(LeaklabError, match="cell run: the translated cell's code differs"):
        translated(checkout, "zh_CN", "01_x", source)


def test_the_translated_lesson_keeps_every_graded_cell_and_shows_test_docstrings_as_notes(checkout):
    source = lesson(SETUP, STORY, RUN, ANSWER, TEST)
    update(checkout, "zh_CN", "01_x", source)
    translate_all(checkout, source, ZH)
    nb = translated(checkout, "zh_CN", "01_x", source)
    assert [c["id"] for c in nb["cells"]] == ["setup", "story", "run", "answer", "test-zh_CN", "test"]
    assert nb["cells"][0] == SETUP and nb["cells"][-1] == TEST
    assert nb["cells"][4] == {"cell_type": "markdown", "id": "test-zh_CN", "metadata": {}, "source": ZH["test"]}
    assert nb["cells"][1]["source"] == ZH["story"] and nb["metadata"] == {"leaklab": {"language": "zh_CN"}}
    assert source["cells"][1] == STORY  # the English is left as it was


def test_an_unreadable_catalog_is_said_so(checkout):
    source = lesson(STORY)
    path = catalog_path(checkout, "zh_CN", "01_x")
    path.parent.mkdir(parents=True)
    path.write_text('msgid "a"\nmsgstr, in a word\n', encoding="utf-8")
    with pytest.raises(LeaklabError, match="not a readable gettext catalog"):
        stale(checkout, "zh_CN", "01_x", source)


def test_the_course_is_translated_into_chinese_and_every_lesson_and_page_matches_its_english():
    from leaklab._translate import sources

    assert languages(ROOT) == ["zh_CN"]
    for name, source in sources(ROOT).items():
        assert stale(ROOT, "zh_CN", name, source) == []


def test_a_page_of_docs_is_read_as_a_cell_per_paragraph_and_per_table_row_and_written_back_the_same():
    from leaklab._translate import doc_as_notebook, notebook_as_doc

    text = "# Glossary\n\nThe words.\nTwo lines.\n\n| term | in Go |\n|---|---|\n| **leak** | `go f()` |\n"
    nb = doc_as_notebook(text, "glossary")
    assert [c["cell_type"] for c in nb["cells"]] == ["markdown", "markdown", "markdown", "raw", "markdown"]
    assert [u.text for u in units(nb)] == [
        "# Glossary",
        "The words.\nTwo lines.",
        "| term | in Go |",
        "| **leak** | `go f()` |",
    ]
    assert notebook_as_doc(nb) == text
    assert (
        notebook_as_doc(doc_as_notebook((ROOT / "docs" / "glossary.md").read_text(), "glossary"))
        == (ROOT / "docs" / "glossary.md").read_text()
    )
