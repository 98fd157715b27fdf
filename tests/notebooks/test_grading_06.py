"""`leaklab grade` end to end for lesson 06: the solution, the exercise and wrong answers, in one run."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import answers_06
import handed_in
import pytest

ROOT = Path(__file__).resolve().parents[2]
SLUG = "06_leak_monitor"
TESTS = {f"{SLUG}_{name}" for name in ("alerts_for_the_leak", "quiet_for_healthy_bursts", "one_alert_one_recovery")}
TESTS |= {f"{SLUG}_stops_cleanly"}


with_answer = partial(handed_in.with_answer, slug=SLUG)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One `leaklab grade --json` over the solution, the exercise and the wrong answers."""
    folder = tmp_path_factory.mktemp("submissions")
    home = tmp_path_factory.mktemp("home")
    submissions = {
        "solution": ROOT / "solutions" / f"{SLUG}.ipynb",
        "exercise": ROOT / "exercises" / f"{SLUG}.ipynb",
        "window": with_answer(answers_06.WINDOW, folder, "window"),
        "flood": with_answer(answers_06.FLOOD, folder, "flood"),
        "no_sustain": with_answer(answers_06.NO_SUSTAIN, folder, "no_sustain"),
        "sleep_loop": with_answer(answers_06.SLEEP_LOOP, folder, "sleep_loop"),
        "never_warns": with_answer(answers_06.NEVER_WARNS, folder, "never_warns"),
        "ge_threshold": with_answer(answers_06.GE_THRESHOLD, folder, "ge_threshold"),
        "only_under": with_answer(answers_06.RECOVERS_ONLY_UNDER, folder, "only_under"),
        "stop_event_slices": with_answer(answers_06.STOP_EVENT_SLICES, folder, "stop_event_slices"),
        "private_event_slices": with_answer(answers_06.PRIVATE_EVENT_SLICES, folder, "private_event_slices"),
        "join_bounded": with_answer(answers_06.JOIN_BOUNDED, folder, "join_bounded"),
        "windowed_series": with_answer(answers_06.WINDOWED_SERIES, folder, "windowed_series"),
        "busy_wait": with_answer(answers_06.BUSY_WAIT, folder, "busy_wait"),
        "lock_slices": with_answer(answers_06.LOCK_SLICES, folder, "lock_slices"),
    }
    return handed_in.graded_by_cli(submissions, home)


def test_the_solution_gets_full_marks(graded):
    result = graded["solution"]
    assert result["error"] is None and result["assignment"] == SLUG
    assert result["score"] == result["max_score"] == 9
    assert set(result["tests"]) == TESTS


@pytest.mark.parametrize("name", ["window", "stop_event_slices"])
def test_another_correct_monitor_gets_full_marks(graded, name):
    assert graded[name]["score"] == 9


def test_the_unmodified_exercise_gets_zero(graded):
    result = graded["exercise"]
    assert result["error"] is None and result["score"] == 0 and result["max_score"] == 9


@pytest.mark.parametrize(
    ("name", "lost"),
    [
        ("flood", {f"{SLUG}_one_alert_one_recovery"}),
        ("no_sustain", {f"{SLUG}_quiet_for_healthy_bursts"}),
        ("sleep_loop", {f"{SLUG}_stops_cleanly"}),
        ("private_event_slices", {f"{SLUG}_stops_cleanly"}),
        ("join_bounded", {f"{SLUG}_stops_cleanly"}),
        ("windowed_series", {f"{SLUG}_alerts_for_the_leak"}),
        ("busy_wait", {f"{SLUG}_stops_cleanly"}),
        ("lock_slices", {f"{SLUG}_stops_cleanly"}),
        ("ge_threshold", {f"{SLUG}_quiet_for_healthy_bursts", f"{SLUG}_one_alert_one_recovery"}),
        ("only_under", {f"{SLUG}_quiet_for_healthy_bursts", f"{SLUG}_one_alert_one_recovery"}),
    ],
)
def test_wrong_monitors_lose_exactly_their_points(graded, name, lost):
    tests = graded[name]["tests"]
    assert {test_id for test_id, t in tests.items() if t["score"] < t["max_score"]} == lost
    assert all(tests[test_id]["score"] == 0 for test_id in lost)
    assert graded[name]["score"] == 9 - sum(tests[test_id]["max_score"] for test_id in lost)


def test_a_monitor_that_never_warns_gets_no_credit_for_its_silence(graded):
    tests = graded["never_warns"]["tests"]
    assert {test_id for test_id, t in tests.items() if t["score"] < t["max_score"]} == TESTS - {f"{SLUG}_stops_cleanly"}
    assert graded["never_warns"]["score"] == 2
