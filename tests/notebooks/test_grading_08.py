"""`leaklab grade` on lesson 08: the solution, the exercise as handed out, fixes of some sources only, and
diagnoses right and wrong."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import answers_08
import handed_in
import pytest

ROOT = Path(__file__).resolve().parents[2]
SLUG = "08_week_in_production"
POINTS = {"diagnosis_graded": 2, "reports": 2, "lookups": 2, "batches": 2, "events": 2, "week_flat": 1}
TESTS = {f"{SLUG}_{name}" for name in POINTS}


with_answer = partial(handed_in.with_answer, slug=SLUG)


with_diagnosis = partial(handed_in.with_answer, slug=SLUG, cell_name="diagnosis")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One `leaklab grade --json` over the solution, the exercise and the wrong answers."""
    folder = tmp_path_factory.mktemp("submissions")
    home = tmp_path_factory.mktemp("home")
    submissions = {
        "solution": ROOT / "solutions" / f"{SLUG}.ipynb",
        "exercise": ROOT / "exercises" / f"{SLUG}.ipynb",
        "three_of_four": with_answer(answers_08.THREE_OF_FOUR, folder, "three_of_four"),
        "tasks_only": with_answer(answers_08.TASKS_ONLY, folder, "tasks_only"),
        "drops_work": with_answer(answers_08.DROPS_WORK, folder, "drops_work"),
        "batch_no_join": with_answer(answers_08.BATCH_NO_JOIN, folder, "batch_no_join"),
        "cheat_deadline": with_answer(answers_08.CHEAT_DEADLINE_TELLS, folder, "cheat_deadline"),
        "cancels_only_on_timeout": with_answer(answers_08.CANCELS_ONLY_ON_TIMEOUT, folder, "cancels_only_on_timeout"),
        "launcher_batch": with_answer(answers_08.LAUNCHER_BATCH, folder, "launcher_batch"),
        "raw_flusher": with_answer(answers_08.RAW_FLUSHER, folder, "raw_flusher"),
        "loses_event_taken_at_stop": with_answer(answers_08.LOSES_EVENT_TAKEN_AT_STOP, folder, "loses_event"),
        **{
            f"diagnosis_{name.lower()}": with_diagnosis(getattr(answers_08, f"DIAGNOSIS_{name}"), folder, name)
            for name in (
                *("QUALIFIED", "LIBRARY_FRAMES", "UNORDERED", "CALLERS", "WRONG_HOLDER", "STUB"),
                *("COMPUTED", "PARSED_FROM_THE_SOURCE"),
            )
        },
    }
    return handed_in.graded_by_cli(submissions, home)


def lost(result: dict) -> set[str]:
    return {test_id for test_id, test in result["tests"].items() if test["score"] < test["max_score"]}


def test_the_solution_gets_full_marks(graded):
    result = graded["solution"]
    assert result["error"] is None and result["assignment"] == SLUG
    assert result["score"] == result["max_score"] == 11
    assert set(result["tests"]) == TESTS
    assert {test_id: test["max_score"] for test_id, test in result["tests"].items()} == {
        f"{SLUG}_{name}": points for name, points in POINTS.items()
    }


def test_the_unmodified_exercise_gets_zero(graded):
    result = graded["exercise"]
    assert result["error"] is None and result["score"] == 0 and result["max_score"] == 11


@pytest.mark.parametrize(
    ("name", "missed", "score"),
    [
        ("three_of_four", {"events", "week_flat"}, 8),  # the flusher still leaks
        ("tasks_only", {"batches", "events", "week_flat"}, 6),  # the thread sources still leak
        ("drops_work", {"lookups", "batches", "week_flat"}, 6),  # no leak, but lookups and batches dropped
        ("batch_no_join", {"batches", "week_flat"}, 8),  # batch() returns before its workers have ended
        ("cheat_deadline", {"lookups", "week_flat"}, 8),  # guesses from the deadline, answers never read
        ("cancels_only_on_timeout", {"reports", "week_flat"}, 8),  # a child left when the client cancels
        ("launcher_batch", {"batches", "week_flat"}, 8),  # workers a launcher started outlive batch()
        ("raw_flusher", {"events", "week_flat"}, 8),  # a `_thread` flusher stop() did not wait for
        ("loses_event_taken_at_stop", {"events", "week_flat"}, 8),  # the event in hand as stop() comes, lost
        ("diagnosis_qualified", set(), 11),  # qualified names, in a tuple: as good
        ("diagnosis_library_frames", {"diagnosis_graded"}, 9),  # the standard library's frames
        ("diagnosis_unordered", {"diagnosis_graded"}, 9),  # the right four, not biggest first
        ("diagnosis_callers", {"diagnosis_graded"}, 9),  # the methods that start them; the working set
        ("diagnosis_wrong_holder", {"diagnosis_graded"}, 9),  # the second group named as the biggest holder
        ("diagnosis_stub", {"diagnosis_graded"}, 9),  # the diagnosis left as handed out
        ("diagnosis_computed", set(), 11),  # plain values computed with .split(): as good
        ("diagnosis_parsed_from_the_source", {"diagnosis_graded"}, 9),  # the grader's answer, parsed: tampered
    ],
)
def test_a_partial_fix_gets_the_points_of_the_sources_it_fixed(graded, name, missed, score):
    result = graded[name]
    assert result["error"] is None
    assert lost(result) == {f"{SLUG}_{test}" for test in missed}
    assert all(result["tests"][f"{SLUG}_{test}"]["score"] == 0 for test in missed)
    assert result["score"] == score
