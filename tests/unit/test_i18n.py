"""leaklab's own messages in the lesson's language: chosen by the notebook, translated whole, never broken."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from leaklab import _i18n
from leaklab._i18n import LANGUAGE_ENV, _, language, ngettext, notebook_language
from leaklab._stacks import counted
from leaklab._translate import package_messages, package_stale
from leaklab.grading.isolation import IsolatedRun, Verdict

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def chinese(monkeypatch):
    """Messages in Chinese, as a grader sets them for a Chinese submission."""
    monkeypatch.setenv(LANGUAGE_ENV, "zh_CN")


@pytest.fixture(autouse=True)
def no_language_of_the_machine(monkeypatch):
    """Neither the lab's nor the graders' choice leaks in from the environment the tests run in."""
    monkeypatch.delenv(LANGUAGE_ENV, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)


def notebook(tmp_path: Path, metadata: dict) -> Path:
    path = tmp_path / "lesson.ipynb"
    path.write_text(json.dumps({"cells": [], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_leaklab_speaks_the_languages_its_lessons_are_translated_into():
    lessons = sorted(p.name for p in (ROOT / "notebooks" / "locales").iterdir() if p.is_dir())
    assert _i18n.languages() == lessons == ["zh_CN"]


def test_english_unless_the_notebook_or_the_grader_says_otherwise():
    assert language() == "en"
    assert _("nothing left behind") == "nothing left behind"


def test_the_language_is_the_notebooks_own_in_the_lab(tmp_path, monkeypatch):
    # GIVEN a kernel JupyterLab started for a Chinese lesson (it names the notebook in JPY_SESSION_NAME)
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook(tmp_path, {"leaklab": {"language": "zh_CN"}})))
    # THEN leaklab's messages are Chinese, without anything set by the learner
    assert language() == "zh_CN"
    assert CJK.search(_("nothing left behind"))


def test_the_graders_choice_wins_over_the_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook(tmp_path, {"leaklab": {"language": "zh_CN"}})))
    monkeypatch.setenv(LANGUAGE_ENV, "en")
    assert language() == "en"


@pytest.mark.parametrize(
    "metadata",
    [{}, {"leaklab": {"language": "xx"}}, {"leaklab": "zh_CN"}, {"leaklab": {"language": ["zh_CN"]}}],
    ids=["none", "unknown", "not a mapping", "not a string"],
)
def test_a_notebook_that_names_no_known_language_is_english(tmp_path, monkeypatch, metadata):
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook(tmp_path, metadata)))
    assert language() == "en"
    assert notebook_language({"metadata": metadata}) == "en"


@pytest.mark.parametrize("notebook", [{"metadata": 5}, {"metadata": None}, {}, [], "x"])
def test_a_notebook_of_any_shape_is_english_when_it_names_no_language(notebook):
    assert notebook_language(notebook) == "en"  # type: ignore[arg-type]


def test_an_unknown_language_from_the_environment_is_english(monkeypatch):
    monkeypatch.setenv(LANGUAGE_ENV, "../../etc")
    assert language() == "en"


def test_fields_are_filled_in_either_language(chinese):
    message = _("{count} sockets or files were left open after the burst", count=3)
    assert "3" in message and CJK.search(message)
    assert ngettext("{n} task", "{n} tasks", 2).startswith("2")


def test_english_plurals_by_count():
    assert [counted(n, "task") for n in (0, 1, 2)] == ["0 tasks", "1 task", "2 tasks"]
    assert counted(1, "thread") == "1 thread"


def catalog_saying(text: str):
    """A catalog that translates every message into `text`."""

    class Saying:
        def gettext(self, message: str) -> str:
            return text

    return lambda: Saying()


def test_a_translation_that_names_a_field_wrongly_falls_back_to_the_english(monkeypatch):
    monkeypatch.setattr(_i18n, "messages", catalog_saying("{nope} 个"))
    assert _("{count} left", count=2) == "2 left"


def test_no_translation_turns_a_problem_into_no_problem(monkeypatch):
    """A check passes when its problem text is empty: an empty or blank translation (or a gettext an
    answer patched to return one) gives the English instead."""
    monkeypatch.setattr(_i18n, "messages", catalog_saying(" "))
    assert _("stop() returned while {running} workers ran", running=2) == "stop() returned while 2 workers ran"


def test_a_verdict_and_its_failures_read_in_chinese(chinese):
    run = IsolatedRun(outcome={"requests": 4, "answered": 4, "completed_with_result": [3, 4]})
    verdict = run.verdict("completed_with_result", no_leftovers=True)
    text = str(verdict)
    assert text.startswith("✗") and CJK.search(verdict.headline)
    assert "completed with result" not in text  # the property named in Chinese too
    assert str(Verdict([("x", None)])).startswith("✓")


def test_a_failure_keeps_the_scenarios_detail_under_its_translated_property(chinese):
    run = IsolatedRun(
        outcome={
            "requests": 2,
            "answered": 2,
            "query_ran_once": [1, 2],
            "problems": ["query ran once: the query ran 2 times, expected once"],
        }
    )
    with pytest.raises(AssertionError) as failure:
        run.require("query_ran_once")
    first, detail = str(failure.value).split("\n", 1)
    assert CJK.search(first) and "1" in first and "2" in first
    assert not detail.startswith("query ran once:")  # the English key, as require found it, is not shown


def test_every_message_of_the_package_is_translated_and_compiled():
    """`make translations` extracts them; a message added or changed in the code and not yet translated
    is named here (and by `make check-notebooks`)."""
    assert package_stale(ROOT, "zh_CN") == []


def test_the_graded_properties_the_lessons_name_are_messages_too():
    ids = {m.id for m in package_messages(ROOT)}
    assert {"completed with result", "stop waits for workers", "week flat"} <= ids
