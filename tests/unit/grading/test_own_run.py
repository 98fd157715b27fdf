"""The grader's own run of a lesson's tests (`grading.own_run`): answer names bound by reference, and the authored
tests (hidden ones included) giving the worked solutions full marks and the exercises nothing."""

from __future__ import annotations

import json

import pytest
from answers_05 import DIAGNOSIS_FROM_THE_GRADER

from leaklab.grading.isolation import AnswerRef, run_isolated
from leaklab.grading.own_run import answer_names, verify
from leaklab.grading.results import Reason

LESSONS = ["01_forgotten_cancel", "02_skipped_stop", "03_hung_call", "04_lifeless_pool"]


def notebook(root, kind: str, slug: str) -> dict:
    return json.loads((root / kind / f"{slug}.ipynb").read_text())


def grade_id(cell: dict) -> str:
    return cell["metadata"].get("nbgrader", {}).get("grade_id", "")


def test_answer_names_binds_code_by_reference_and_literals_by_value():
    source = "import os\nLIMIT = 3\nPAIR: tuple = (1, 'a')\nNOW = os.getpid()\n\n\ndef f():\n    pass\n"
    source += "\n\nclass C:\n    pass\n"
    names = answer_names(source)
    assert names["LIMIT"] == 3 and names["PAIR"] == (1, "a")
    assert {name for name, value in names.items() if isinstance(value, AnswerRef)} == {"NOW", "f", "C"}
    assert names["f"].source == source and names["f"].__name__ == "f"
    assert "os" not in names  # an import is the answer's own business, in its own process


@pytest.mark.parametrize(
    "source",
    [
        'LEAK_FUNCTION, LEAK_LINE = "call", 142\n',
        '[LEAK_FUNCTION, LEAK_LINE] = ["call", 142]\n',
        'LEAK_FUNCTION = NAME = "call"\nLEAK_LINE: int = 142\n',
        '(LEAK_FUNCTION, (LEAK_LINE, _)) = ("call", (142, None))\n',
    ],
)
def test_answer_names_binds_every_assignment_form_as_python_does(source):
    names = answer_names(source)
    assert (names["LEAK_FUNCTION"], names["LEAK_LINE"]) == ("call", 142)


def test_names_an_assignment_computes_are_bound_by_reference():
    names = answer_names("import os\nA, *REST = 1, 2, 3\nB, C = os.getpid(), 2\nD = 1\nD += 1\n")
    assert all(isinstance(names[name], AnswerRef) for name in ("A", "REST", "B", "D"))
    assert names["C"] == 2


def test_names_a_block_binds_are_bound_by_reference_as_the_kernel_has_them():
    source = "import ast\nfor node in range(3):\n    if node:\n        FOUND = node\n"
    source += "with open(__file__) as handle:\n    TEXT = [line for line in handle]\n"
    source += "try:\n    pass\nexcept OSError as error:\n    pass\nif True:\n    def f():\n        inner = 1\n"
    names = answer_names(source)
    assert set(names) == {"node", "FOUND", "handle", "TEXT", "error", "f"}  # not `line`, `inner`, `ast`
    assert all(isinstance(value, AnswerRef) for value in names.values())


def test_an_answer_name_cannot_be_called_in_the_graders_process():
    with pytest.raises(TypeError, match=r"only run by leaklab\.run_isolated"):
        answer_names("def handle_request():\n    raise SystemExit\n")["handle_request"]()


def test_answer_names_refuses_invalid_python():
    with pytest.raises(SyntaxError):
        answer_names("def broken(:\n")


def test_an_answer_ref_runs_in_a_fresh_process():
    ref = answer_names("async def handle_request(request):\n    raise SystemExit\n")["handle_request"]
    run = run_isolated(ref, scenario="forgotten_cancel")
    assert "SystemExit" in run.error and run.reason is Reason.ANSWER_FAILED


@pytest.mark.parametrize("slug", LESSONS)
def test_the_solution_gets_full_marks_and_the_exercise_none(root, slug):
    source = notebook(root, "notebooks", slug)
    solution = verify(source, notebook(root, "solutions", slug))
    assert len(solution) >= 3 and all(v.score == v.max_score > 0 for v in solution.values()), solution
    assert sum(v.max_score for v in solution.values()) == 9
    exercise = verify(source, notebook(root, "exercises", slug))
    assert all(v.score == 0 and v.message for v in exercise.values()), exercise


def test_a_missing_or_broken_answer_fails_every_test_with_its_reason(root):
    slug = "04_lifeless_pool"
    source, submitted = notebook(root, "notebooks", slug), notebook(root, "solutions", slug)
    answer = next(c for c in submitted["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == f"{slug}_fix")
    answer["source"] = "class Pool(:\n"
    broken = verify(source, submitted)
    assert all(v.score == 0 and "is not valid Python" in v.message for v in broken.values())
    submitted["cells"].remove(answer)
    missing = verify(source, submitted)
    assert all(v.score == 0 and "is missing from the submission" in v.message for v in missing.values())


def diagnosis_graded_alone(root, answer: str):
    """Lesson 05 handed in with `answer` as its diagnosis, graded by the diagnosis's test alone."""
    slug = "05_mystery_service"
    source, submitted = notebook(root, "notebooks", slug), notebook(root, "solutions", slug)
    graded = f"{slug}_diagnosis_graded"
    source["cells"] = [c for c in source["cells"] if grade_id(c) in ("", f"{slug}_setup", f"{slug}_diagnosis", graded)]
    next(c for c in submitted["cells"] if grade_id(c) == f"{slug}_diagnosis")["source"] = answer
    return verify(source, submitted)[graded]


def test_a_value_worked_out_by_reading_the_grader_s_answer_fails_as_tampering_not_as_a_wrong_type(root):
    # GIVEN lesson 05's diagnosis read from the grader's own answer (its values run ends as tampered)
    result = diagnosis_graded_alone(root, DIAGNOSIS_FROM_THE_GRADER)
    # THEN its test says so, not that LEAK_FUNCTION is not a str
    assert result.score == 0 and result.reason is Reason.TAMPERED
    assert "read the grader's own answer" in result.message and "should be a str" not in result.message


def test_a_value_the_answer_cell_fails_to_work_out_is_unbound_and_its_test_says_why(root):
    # GIVEN lesson 05's diagnosis computed from the dump by a search that finds nothing (the cell raises)
    answer = "import re\nLEAK_FUNCTION = 'call'\nLEAK_LINE = int(re.search('no such line', 'x').group(1))\n"
    result = diagnosis_graded_alone(root, answer)
    # THEN its test says the name is missing because the cell raised, not that a placeholder is no int
    assert result.score == 0 and result.message.startswith("NameError: name 'LEAK_LINE' is not defined")
    assert "the answer cell raised AttributeError" in result.message


def test_the_submissions_own_test_cells_are_not_the_ones_run(root):
    slug = "04_lifeless_pool"
    source, exercise = notebook(root, "notebooks", slug), notebook(root, "exercises", slug)
    for cell in exercise["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade"):
            cell["source"] = "pass\n"  # a learner's "test" that always passes
    assert all(v.score == 0 for v in verify(source, exercise).values())
