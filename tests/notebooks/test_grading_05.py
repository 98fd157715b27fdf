"""`leaklab grade` end to end for lesson 05: the diagnosis and the fix, right and wrong."""

from __future__ import annotations

import json
from pathlib import Path

import answers_05
import pytest
from handed_in import graded_by_cli

ROOT = Path(__file__).resolve().parents[2]
SLUG = "05_mystery_service"
DIAGNOSIS = f"{SLUG}_diagnosis_graded"
FIX_TESTS = {f"{SLUG}_no_task_left", f"{SLUG}_memory_bounded", f"{SLUG}_responses_right"}


def with_answer(folder: Path, name: str, above: tuple[str, ...] = (), **sources: str) -> Path:
    """The worked notebook with answer cells replaced (by grade id suffix: `fix`, `diagnosis`), and the
    learner's own code cells `above` added just above the diagnosis."""
    nb = json.loads((ROOT / "solutions" / f"{SLUG}.ipynb").read_text())
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        for part, source in sources.items():
            if grade_id == f"{SLUG}_{part}":
                cell["source"] = source
    ids = [cell["metadata"].get("nbgrader", {}).get("grade_id") for cell in nb["cells"]]
    at = ids.index(f"{SLUG}_diagnosis")
    empty = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}
    nb["cells"][at:at] = [{**empty, "id": f"mine-{i}", "source": text} for i, text in enumerate(above)]
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One `leaklab grade --json` over the solution, the exercise and the wrong answers."""
    folder = tmp_path_factory.mktemp("submissions")
    home = tmp_path_factory.mktemp("home")
    submissions = {
        "solution": ROOT / "solutions" / f"{SLUG}.ipynb",
        "exercise": ROOT / "exercises" / f"{SLUG}.ipynb",
        "reader_only": with_answer(folder, "reader_only", fix=answers_05.READER_ONLY),
        "outer_frame": with_answer(folder, "outer_frame", diagnosis=answers_05.DIAGNOSIS_OUTER_FRAME),
        "wrong_function": with_answer(folder, "wrong_function", diagnosis=answers_05.DIAGNOSIS_WRONG_FUNCTION),
        "wrong_line": with_answer(folder, "wrong_line", diagnosis=answers_05.DIAGNOSIS_WRONG_LINE),
        "line_as_str": with_answer(folder, "line_as_str", diagnosis=answers_05.DIAGNOSIS_LINE_AS_STR),
        "times_out": with_answer(folder, "times_out", fix=answers_05.TIMES_OUT),
        "keeps_entry": with_answer(folder, "keeps_entry", fix=answers_05.RESOLVES_BUT_KEEPS_ENTRY),
        "fails_every_call": with_answer(folder, "fails_every_call", fix=answers_05.FAILS_EVERY_CALL),
        "leaky": with_answer(folder, "leaky", fix=answers_05.LEAKY),
        "fix_stub": with_answer(folder, "fix_stub", fix=answers_05.STUB),
        "cheat_local_price": with_answer(folder, "cheat_local_price", fix=answers_05.CHEAT_LOCAL_PRICE),
        "late_reply_kills_reader": with_answer(
            folder, "late_reply_kills_reader", fix=answers_05.LATE_REPLY_KILLS_READER
        ),
        "hidden_table": with_answer(folder, "hidden_table", fix=answers_05.HIDDEN_TABLE),
        "price_without_reply": with_answer(folder, "price_without_reply", fix=answers_05.PRICE_WITHOUT_REPLY),
        "reply_object": with_answer(folder, "reply_object", fix=answers_05.REPLY_OBJECT),
        "qualified": with_answer(folder, "qualified", diagnosis=answers_05.DIAGNOSIS_QUALIFIED),
        "tuple": with_answer(folder, "tuple", diagnosis=answers_05.DIAGNOSIS_TUPLE),
        "computed": with_answer(folder, "computed", diagnosis=answers_05.DIAGNOSIS_COMPUTED),
        "cells_above": with_answer(
            folder,
            "cells_above",
            tuple(answers_05.CELLS_ABOVE_THE_DIAGNOSIS),
            diagnosis=answers_05.DIAGNOSIS_FROM_CELLS_ABOVE,
        ),
        "awaited": with_answer(folder, "awaited", diagnosis=answers_05.DIAGNOSIS_AWAITED),
        "awaited_above": with_answer(
            folder,
            "awaited_above",
            (answers_05.CELL_ABOVE_THAT_AWAITS,),
            diagnosis=answers_05.DIAGNOSIS_FROM_AN_AWAITED_CELL,
        ),
        "tried_by_hand": with_answer(folder, "tried_by_hand", fix=answers_05.FIXED_TRIED_BY_HAND),
        "section_2": with_answer(folder, "section_2", diagnosis=answers_05.DIAGNOSIS_FROM_SECTION_2),
        "swallows_cancellation": with_answer(folder, "swallows_cancellation", fix=answers_05.SWALLOWS_CANCELLATION),
        "careful_only_when_graded": with_answer(
            folder, "careful_only_when_graded", fix=answers_05.CAREFUL_ONLY_WHEN_GRADED
        ),
        "table_in_a_default": with_answer(folder, "table_in_a_default", fix=answers_05.TABLE_IN_A_DEFAULT),
        "from_the_grader": with_answer(folder, "from_the_grader", diagnosis=answers_05.DIAGNOSIS_FROM_THE_GRADER),
    }
    return graded_by_cli(submissions, home)


def lost(result: dict) -> set[str]:
    """The tests that did not get all their points; each of them got none."""
    tests = result["tests"]
    assert all(t["score"] in (0, t["max_score"]) for t in tests.values())
    return {test_id for test_id, t in tests.items() if t["score"] < t["max_score"]}


def test_the_solution_gets_full_marks(graded):
    result = graded["solution"]
    assert result["error"] is None and result["assignment"] == SLUG
    assert result["score"] == result["max_score"] == 9
    assert set(result["tests"]) == FIX_TESTS | {DIAGNOSIS}
    assert result["tests"][DIAGNOSIS]["max_score"] == 3


def test_the_unmodified_exercise_gets_zero(graded):
    result = graded["exercise"]
    assert result["error"] is None and result["score"] == 0 and result["max_score"] == 9


@pytest.mark.parametrize(
    ("name", "points_lost"),
    [
        ("reader_only", {f"{SLUG}_memory_bounded"}),  # a caller that gave up leaves its entry
        ("outer_frame", {DIAGNOSIS}),
        ("wrong_function", {DIAGNOSIS}),
        ("wrong_line", {DIAGNOSIS}),  # the method's `def`, not the line where its tasks wait
        ("line_as_str", {DIAGNOSIS}),  # the visible test asks for an int
        ("times_out", {f"{SLUG}_memory_bounded", f"{SLUG}_responses_right"}),
        ("keeps_entry", FIX_TESTS),  # its reader dies on an error reply for a caller who has gone
        ("fails_every_call", FIX_TESTS),  # likewise: the traffic after the late reply is never answered
        ("cheat_local_price", {f"{SLUG}_responses_right"}),  # made-up prices are not this backend's
        ("late_reply_kills_reader", FIX_TESTS),  # a reply after its caller has gone: KeyError in the reader
        ("hidden_table", {f"{SLUG}_memory_bounded"}),  # `pending` empty, the futures kept elsewhere
        ("price_without_reply", {f"{SLUG}_responses_right"}),  # `price()` is not what the replies say
        ("reply_object", set()),
        ("leaky", FIX_TESTS),
        ("fix_stub", FIX_TESTS),
        ("qualified", set()),
        ("tuple", set()),  # both names in one assignment
        ("computed", set()),  # the line read with inspect: worked out in a fresh interpreter
        ("cells_above", set()),  # from what the learner's own cells above it left
        ("awaited", set()),  # a top-level `await`, as IPython runs it
        ("awaited_above", set()),  # from a cell above that awaited
        ("tried_by_hand", set()),  # the fix, tried in its own cell with a top-level `await`
        ("section_2", set()),  # from section 2's dump, fetched while its cell recorded with memray
        ("swallows_cancellation", {f"{SLUG}_responses_right"}),  # a caller who hung up got 0.00
        ("careful_only_when_graded", FIX_TESTS),  # the grader's backend is the course's own Backend
        ("table_in_a_default", {f"{SLUG}_memory_bounded"}),  # its futures kept in a default argument
        ("from_the_grader", {DIAGNOSIS}),  # read from the grader's own answer
    ],
)
def test_each_wrong_answer_loses_exactly_its_points(graded, name, points_lost):
    assert graded[name]["error"] is None
    assert lost(graded[name]) == points_lost


def test_a_diagnosis_read_from_the_grader_s_answer_is_said_to_be_tampering(graded):
    result = graded["from_the_grader"]
    assert result["reason"] == "tampered"
    assert "read the grader's own answer" in result["tests"][DIAGNOSIS]["message"]
