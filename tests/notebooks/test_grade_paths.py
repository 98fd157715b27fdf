"""`leaklab grade` runs a notebook itself, or through nbgrader when feedback pages are asked for: the
two must score every test alike (nbgrader's autograde is the reference for how a test cell scores)."""

from __future__ import annotations

from functools import partial

import answers
import handed_in
import pytest

ROOT = handed_in.ROOT
SLUG = "01_forgotten_cancel"
with_answer = partial(handed_in.with_answer, slug=SLUG)


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    folder = tmp_path_factory.mktemp("paths")
    submissions = {
        "solution": ROOT / "solutions" / f"{SLUG}.ipynb",
        "exercise": ROOT / "exercises" / f"{SLUG}.ipynb",
        "leaky": with_answer(answers.LEAKY, folder, "leaky"),
        "blocks_caller": with_answer(answers.BLOCKS_CALLER, folder, "blocks_caller"),
    }
    own = handed_in.graded_by_cli(submissions, tmp_path_factory.mktemp("home"))
    pages = str(tmp_path_factory.mktemp("pages"))
    nbgrader = handed_in.graded_by_cli(submissions, tmp_path_factory.mktemp("home"), "--feedback", pages)
    return {name: (own[name], nbgrader[name]) for name in submissions}


@pytest.mark.parametrize("name", ["solution", "exercise", "leaky", "blocks_caller"])
def test_both_ways_score_every_test_alike(both, name):
    own, nbgrader = both[name]
    assert own["error"] is None and nbgrader["error"] is None
    assert own["tests"] == nbgrader["tests"]


def test_the_answers_are_told_apart(both):
    """Not all alike: the comparison above compares something."""
    scores = {name: own["score"] for name, (own, _) in both.items()}
    assert scores["solution"] == 9 and scores["exercise"] == 0 and 0 < scores["leaky"] < 9
    assert 0 < scores["blocks_caller"] < 9
