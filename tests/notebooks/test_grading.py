"""`leaklab grade` end to end: real notebooks, nbgrader's autograde, the CLI's JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import answers_02
import answers_03
import answers_04
import handed_in
import pytest
from answers import LEAKY, PATCHED_COUNTERS, TASK_GROUP

ROOT = Path(__file__).resolve().parents[2]
SLUG = "01_forgotten_cancel"
SLUG_02 = "02_skipped_stop"
SLUG_03 = "03_hung_call"
SLUG_04 = "04_lifeless_pool"
LEAK_TESTS = {f"{SLUG}_no_task_left", f"{SLUG}_memory_bounded"}
BEHAVIOUR_TESTS = {f"{SLUG}_results", f"{SLUG}_gives_up"}


def with_answer(source: str, folder: Path, name: str, slug: str = SLUG) -> Path:
    """The worked notebook of `slug` with its answer cell replaced, as a learner would submit it."""
    return handed_in.with_answer(source, folder, name, slug=slug)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One `leaklab grade --json` over every kind of submission, with an empty home folder."""
    folder = tmp_path_factory.mktemp("submissions")
    home = tmp_path_factory.mktemp("home")
    (folder / "invalid.ipynb").write_text('{"cells": [')
    solution = json.loads((ROOT / "solutions" / f"{SLUG}.ipynb").read_text())
    no_answer = {
        **solution,
        "cells": [c for c in solution["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") != f"{SLUG}_fix"],
    }
    (folder / "no_answer.ipynb").write_text(json.dumps(no_answer))
    bad_metadata = {**solution, "cells": [{**solution["cells"][0], "metadata": []}, *solution["cells"][1:]]}
    (folder / "bad_metadata.ipynb").write_text(json.dumps(bad_metadata))
    (folder / "unknown.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    submissions = {
        "solution": ROOT / "solutions" / f"{SLUG}.ipynb",
        "exercise": ROOT / "exercises" / f"{SLUG}.ipynb",
        "leaky": with_answer(LEAKY, folder, "leaky"),
        "patched": with_answer(PATCHED_COUNTERS, folder, "patched"),
        "task_group": with_answer(TASK_GROUP, folder, "task_group"),
        "kills_its_kernel": with_answer(TASK_GROUP + "\nimport os\n\nos._exit(0)\n", folder, "kills_its_kernel"),
        "invalid": folder / "invalid.ipynb",
        "unknown": folder / "unknown.ipynb",
        "missing": folder / "missing.ipynb",
        "no_answer": folder / "no_answer.ipynb",
        "bad_metadata": folder / "bad_metadata.ipynb",
        "folder": folder,
        "solution_02": ROOT / "solutions" / f"{SLUG_02}.ipynb",
        "exercise_02": ROOT / "exercises" / f"{SLUG_02}.ipynb",
        "joins_but_sleeps": with_answer(answers_02.JOINS_BUT_SLEEPS, folder, "joins_but_sleeps", SLUG_02),
        "drops_failed_jobs": with_answer(answers_02.DROPS_FAILED_JOBS, folder, "drops_failed_jobs", SLUG_02),
        "solution_03": ROOT / "solutions" / f"{SLUG_03}.ipynb",
        "exercise_03": ROOT / "exercises" / f"{SLUG_03}.ipynb",
        "keeps_socket": with_answer(answers_03.TIMES_OUT_BUT_KEEPS_SOCKET, folder, "keeps_socket", SLUG_03),
        "wait_for_thread": with_answer(answers_03.WAIT_FOR_THREAD, folder, "wait_for_thread", SLUG_03),
        "solution_04": ROOT / "solutions" / f"{SLUG_04}.ipynb",
        "exercise_04": ROOT / "exercises" / f"{SLUG_04}.ipynb",
        "no_join": with_answer(answers_04.NO_JOIN, folder, "no_join", SLUG_04),
        "drops_queued_jobs": with_answer(answers_04.DROPS_QUEUED_JOBS, folder, "drops_queued_jobs", SLUG_04),
    }
    feedback = tmp_path_factory.mktemp("feedback")
    cli = [sys.executable, "-m", "leaklab._cli", "grade", "--json", "--feedback", str(feedback)]
    # Two commands side by side, as a class is graded (the suite takes less time): lesson 01's submissions
    # with the bad files in one, whose exit code and progress the tests read, lessons 02-04's in the other.
    names = list(submissions)
    shares = [names[: names.index("folder") + 1], names[names.index("folder") + 1 :]]
    done = handed_in.side_by_side([[*cli, *(str(submissions[n]) for n in share)] for share in shares], home)
    by_name = {}
    for share, (_code, stdout, _stderr) in zip(shares, done, strict=True):
        by_name.update(zip(share, json.loads(stdout)["results"], strict=True))
    (code, _stdout, stderr), (other_code, _, _) = done
    return {
        "by_name": by_name,
        "returncode": code,
        "stderr": stderr,
        "other_returncode": other_code,
        "home": home,
        "feedback": feedback,
    }


def scores(result: dict, names: set[str]) -> float:
    return sum(result["tests"][name]["score"] for name in names)


def test_the_solution_gets_full_marks(graded):
    result = graded["by_name"]["solution"]
    assert result["error"] is None and result["assignment"] == SLUG
    assert result["max_score"] == 9 and result["score"] == 9
    assert set(result["tests"]) == LEAK_TESTS | BEHAVIOUR_TESTS


def test_another_correct_fix_gets_full_marks(graded):
    assert graded["by_name"]["task_group"]["score"] == 9


def test_the_unmodified_exercise_gets_zero(graded):
    result = graded["by_name"]["exercise"]
    assert result["error"] is None and result["score"] == 0 and result["max_score"] == 9


def test_a_leaky_fix_loses_the_leak_points_only(graded):
    result = graded["by_name"]["leaky"]
    assert scores(result, LEAK_TESTS) == 0
    assert scores(result, BEHAVIOUR_TESTS) == 4


def test_patched_counters_do_not_earn_leak_points(graded):
    result = graded["by_name"]["patched"]
    assert scores(result, LEAK_TESTS) == 0


def test_an_answer_that_kills_its_kernel_scores_what_the_graders_own_run_gave_with_the_reason(graded):
    """As the class grader records it: whether a kernel the answer broke dies or only goes silent can
    depend on the machine's load, and the grade must not."""
    result = graded["by_name"]["kills_its_kernel"]
    assert result["error"] is None and result["reason"] == "kernel died"
    assert result["score"] == 0 and result["max_score"] == 9


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("invalid", "invalid JSON"),
        ("unknown", "belongs to no known exercise"),
        ("missing", "no such file"),
        ("no_answer", f"has no answer cell {SLUG}_fix: was it deleted?"),
        ("bad_metadata", "is not a valid notebook"),
        ("folder", "is a folder, not a notebook"),
    ],
)
def test_bad_files_get_their_own_error_and_the_rest_is_graded(graded, name, reason):
    result = graded["by_name"][name]
    assert reason in result["error"] and result["score"] == 0
    assert (graded["returncode"], graded["other_returncode"]) == (1, 0)
    assert graded["by_name"]["solution"]["score"] == 9


def test_json_has_the_documented_shape(graded):
    for result in graded["by_name"].values():
        assert set(result) == {"notebook", "assignment", "score", "max_score", "tests", "reason", "detail", "error"}
        for test in result["tests"].values():
            assert set(test) == {"score", "max_score", "message"}
            assert (test["message"] == "") == (test["score"] == test["max_score"])


def test_progress_goes_to_stderr(graded):
    """Lesson 01's command: six notebooks to grade, beside its bad files (said at once, not counted)."""
    assert "[1/6] grading" in graded["stderr"] and "[6/6] grading" in graded["stderr"]


def test_nothing_is_written_to_the_home_folder(graded):
    assert list(graded["home"].iterdir()) == []


def test_feedback_is_written_without_the_hidden_tests(graded):
    pages = sorted(p.name for p in graded["feedback"].iterdir())
    names = ("01_forgotten_cancel", "01_forgotten_cancel-2", "leaky", "patched", "task_group")
    names += ("02_skipped_stop", "02_skipped_stop-2", "joins_but_sleeps", "drops_failed_jobs")
    names += ("03_hung_call", "03_hung_call-2", "keeps_socket", "wait_for_thread")
    names += ("04_lifeless_pool", "04_lifeless_pool-2", "no_join", "drops_queued_jobs")
    assert pages == sorted(f"{name}.html" for name in names)
    hidden = "traffic="  # only the hidden tests draw their traffic
    source = (ROOT / "notebooks" / f"{SLUG}.ipynb").read_text()
    assert hidden in source
    for page in graded["feedback"].iterdir():
        html = page.read_text()
        assert hidden not in html and "HIDDEN TESTS" not in html and "requests=90" not in html
    assert "left behind" in (graded["feedback"] / "leaky.html").read_text()
    # The kernel showed its three figures as data (never loading matplotlib); the grader drew them.
    solution = (graded["feedback"] / "01_forgotten_cancel.html").read_text()
    assert solution.count("data:image/png") == 3 and "[leaklab: a figure" not in solution


def test_lesson_02_solution_full_and_exercise_zero(graded):
    assert graded["by_name"]["solution_02"]["score"] == graded["by_name"]["solution_02"]["max_score"] == 9
    assert graded["by_name"]["exercise_02"]["score"] == 0


@pytest.mark.parametrize(
    ("name", "lost"),
    [("joins_but_sleeps", f"{SLUG_02}_stops_promptly"), ("drops_failed_jobs", f"{SLUG_02}_work_gets_done")],
)
def test_lesson_02_wrong_fixes_lose_exactly_their_points(graded, name, lost):
    tests = graded["by_name"][name]["tests"]
    assert tests[lost]["score"] == 0
    assert all(t["score"] == t["max_score"] for test_id, t in tests.items() if test_id != lost)


def test_lesson_03_solution_full_and_exercise_zero(graded):
    assert graded["by_name"]["solution_03"]["score"] == graded["by_name"]["solution_03"]["max_score"] == 9
    assert graded["by_name"]["exercise_03"]["score"] == 0


@pytest.mark.parametrize(
    ("name", "lost"),
    [
        # its connect is outside the deadline too: the calls to the service's door hang in it
        ("keeps_socket", {f"{SLUG_03}_{test}" for test in ("stuck_calls_time_out", "nothing_left_open")}),
        # its reset calls wait behind the stuck threads and time out: they do not raise ConnectionResetError
        (
            "wait_for_thread",
            {f"{SLUG_03}_{test}" for test in ("stuck_calls_time_out", "nothing_left_open", "healthy_calls_answered")},
        ),
    ],
)
def test_lesson_03_wrong_fixes_lose_exactly_their_points(graded, name, lost):
    tests = graded["by_name"][name]["tests"]
    assert {test_id for test_id, t in tests.items() if t["score"] < t["max_score"]} == lost
    assert all(tests[test_id]["score"] == 0 for test_id in lost)


def test_lesson_04_solution_full_and_exercise_zero(graded):
    assert graded["by_name"]["solution_04"]["score"] == graded["by_name"]["solution_04"]["max_score"] == 9
    assert graded["by_name"]["exercise_04"]["score"] == 0


@pytest.mark.parametrize(
    ("name", "lost"),
    [
        (
            "no_join",  # and its `with` blocks leave workers running: __exit__ is that stop()
            {f"{SLUG_04}_{t}" for t in ("stop_waits_for_workers", "every_job_accounted_for", "no_worker_survives")},
        ),
        ("drops_queued_jobs", {f"{SLUG_04}_every_job_accounted_for"}),
    ],
)
def test_lesson_04_wrong_fixes_lose_exactly_their_points(graded, name, lost):
    tests = graded["by_name"][name]["tests"]
    assert {test_id for test_id, t in tests.items() if t["score"] < t["max_score"]} == lost
    assert all(tests[test_id]["score"] == 0 for test_id in lost)
