"""Lesson 07 graded end to end: `leaklab grade --json` over the solution, the exercise and wrong answers."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import answers_07
import handed_in
import pytest

ROOT = Path(__file__).resolve().parents[2]
SLUG = "07_static_checks"
TESTS = {f"{SLUG}_{name}" for name in ("flags_leaky", "passes_correct", "right_lines", "async_flavour")}


with_answer = partial(handed_in.with_answer, slug=SLUG)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One `leaklab grade --json` over lesson 07's submissions, with an empty home folder."""
    folder = tmp_path_factory.mktemp("submissions")
    home = tmp_path_factory.mktemp("home")
    submissions = {
        "solution": ROOT / "solutions" / f"{SLUG}.ipynb",
        "exercise": ROOT / "exercises" / f"{SLUG}.ipynb",
        "misses_async": with_answer(answers_07.MISSES_ASYNC, folder, "misses_async"),
        "flags_every_sleep": with_answer(answers_07.FLAGS_EVERY_SLEEP, folder, "flags_every_sleep"),
        "crashes_without_loop": with_answer(answers_07.CRASHES_WITHOUT_LOOP, folder, "crashes_without_loop"),
        "only_while_true": with_answer(answers_07.ONLY_WHILE_TRUE, folder, "only_while_true"),
        "walk_into_defs": with_answer(answers_07.WALK_INTO_DEFS, folder, "walk_into_defs"),
        "cheat_import": with_answer(answers_07.CHEAT_IMPORT, folder, "cheat_import"),
        "regex_loop_test": with_answer(answers_07.REGEX_LOOP_TEST, folder, "regex_loop_test"),
        "unsorted_duplicates": with_answer(answers_07.UNSORTED_DUPLICATES, folder, "unsorted_duplicates"),
        "only_def_resets": with_answer(answers_07.ONLY_DEF_RESETS, folder, "only_def_resets"),
        "flags_every_handler": with_answer(answers_07.FLAGS_EVERY_HANDLER, folder, "flags_every_handler"),
    }
    return handed_in.graded_by_cli(submissions, home)


def test_the_solution_gets_full_marks(graded):
    result = graded["solution"]
    assert result["error"] is None and result["assignment"] == SLUG
    assert result["score"] == result["max_score"] == 9
    assert set(result["tests"]) == TESTS


def test_the_unmodified_exercise_gets_zero(graded):
    result = graded["exercise"]
    assert result["error"] is None and result["score"] == 0 and result["max_score"] == 9


@pytest.mark.parametrize(
    ("name", "lost", "score"),
    [
        ("misses_async", {"async_flavour"}, 7),
        ("flags_every_sleep", {"passes_correct", "right_lines", "async_flavour"}, 3),
        ("crashes_without_loop", {"passes_correct", "async_flavour"}, 4),
        ("only_while_true", {"flags_leaky", "right_lines", "async_flavour"}, 3),
        # Full marks on the visible snippets; the hidden ones (in the notebook, not the package) tell.
        ("walk_into_defs", {"flags_leaky", "passes_correct", "right_lines"}, 2),
        ("only_def_resets", {"passes_correct", "async_flavour"}, 4),
        ("cheat_import", {"flags_leaky", "passes_correct", "right_lines", "async_flavour"}, 0),
        ("regex_loop_test", {"passes_correct", "async_flavour"}, 4),
        ("unsorted_duplicates", {"right_lines", "async_flavour"}, 6),
        ("flags_every_handler", {"passes_correct", "right_lines", "async_flavour"}, 3),
    ],
)
def test_wrong_checks_lose_exactly_their_points(graded, name, lost, score):
    result = graded[name]
    tests = result["tests"]
    assert {test_id for test_id, t in tests.items() if t["score"] < t["max_score"]} == {f"{SLUG}_{p}" for p in lost}
    assert all(tests[f"{SLUG}_{p}"]["score"] == 0 for p in lost)
    assert result["score"] == score


def test_the_lessons_answer_is_the_one_the_unit_tests_use():
    source = json.loads((ROOT / "notebooks" / f"{SLUG}.ipynb").read_text())
    answer = next(c for c in source["cells"] if c["metadata"].get("nbgrader", {}).get("solution"))
    text = re.sub(r"^ *### (BEGIN|END) SOLUTION\n", "", "".join(answer["source"]) + "\n", flags=re.M)
    assert text.strip() == answers_07.FIXED.strip()
