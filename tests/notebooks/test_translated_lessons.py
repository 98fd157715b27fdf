"""The Chinese lessons grade as the English ones: every translated solution full marks and every translated
exercise as released none, by `leaklab grade` and by one `leaklab autograde` of a class in which English
and Chinese submissions of the same assignments are mixed (one grader, one gradebook); a course released
in Chinese grades either language too, each submission's messages and feedback page in its own."""

from __future__ import annotations

import json
import re

import pytest
from handed_in import graded_by_cli
from test_class_grading import ROOT, finish, hand_in, leaklab, table

SLUGS = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHINESE = {"solutions": ROOT / "solutions" / "zh_CN", "exercises": ROOT / "exercises" / "zh_CN"}


def test_every_lesson_has_its_chinese_exercise_and_solution():
    for folder in CHINESE.values():
        assert sorted(path.stem for path in folder.glob("*.ipynb")) == SLUGS


def expected(kind: str, result: dict) -> bool:
    full = result["score"] == result["max_score"] and result["max_score"] > 0
    return full if kind == "solutions" else result["score"] == 0


def test_each_chinese_solution_gets_full_marks_and_each_exercise_none_from_leaklab_grade(tmp_path):
    submitted = {f"{kind}/{slug}": folder / f"{slug}.ipynb" for kind, folder in CHINESE.items() for slug in SLUGS}
    results = graded_by_cli(submitted, tmp_path)
    wrong = {name: (r["score"], r["max_score"]) for name, r in results.items() if not expected(name.split("/")[0], r)}
    assert wrong == {}


@pytest.fixture(scope="module")
def mixed_class(tmp_path_factory):
    """A course from `leaklab course`, handed in every Chinese solution and exercise and two English
    solutions, graded by one `leaklab autograde`."""
    course = tmp_path_factory.mktemp("mixed") / "course"
    assert finish(leaklab("course", str(course)))[0] == 0
    submissions = {
        f"zh-{kind}-{slug[:2]}": (slug, (folder / f"{slug}.ipynb").read_bytes())
        for kind, folder in CHINESE.items()
        for slug in SLUGS
    }
    submissions |= {
        f"en-solutions-{slug[:2]}": (slug, (ROOT / "solutions" / f"{slug}.ipynb").read_bytes()) for slug in SLUGS[:2]
    }
    hand_in(course, submissions)
    code, stderr = finish(leaklab("autograde", str(course)))
    return code, stderr, table(course), submissions, course


def test_a_class_mixing_english_and_chinese_is_graded_by_one_autograde(mixed_class):
    code, stderr, rows, submissions, _ = mixed_class
    assert code == 0, stderr[-2000:]
    assert set(rows) == set(submissions)
    wrong = {}
    for student, row in rows.items():
        kind, score, most = student.split("-")[1], float(row["score"]), float(row["max_score"])
        if not expected(kind, {"score": score, "max_score": most}):
            wrong[student] = (score, most, row["reason"])
    assert wrong == {}


def test_the_chinese_solutions_ran_without_an_error_in_their_sandboxed_kernels(mixed_class):
    """Their Chinese plots need the CJK font, which the sandbox sees as the lab does (/usr, read-only)."""
    course = mixed_class[-1]
    for slug in SLUGS:
        nb = json.loads((course / "autograded" / f"zh-solutions-{slug[:2]}" / slug / f"{slug}.ipynb").read_text())
        errors = [o["ename"] for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        texts = json.dumps([o.get("text", "") for c in nb["cells"] for o in c.get("outputs", [])], ensure_ascii=False)
        assert errors == [] and "missing from font" not in texts, slug


CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def chinese_course(tmp_path_factory):
    """A course released in Chinese (`leaklab course --lang zh_CN`), handed lesson 01's English solution
    and its Chinese exercise as released, graded by `leaklab autograde`."""
    course = tmp_path_factory.mktemp("zh-course") / "course"
    assert finish(leaklab("course", str(course), "--lang", "zh_CN"))[0] == 0
    slug = SLUGS[0]
    submissions = {
        "en-solutions-01": (slug, (ROOT / "solutions" / f"{slug}.ipynb").read_bytes()),
        "zh-exercises-01": (slug, (CHINESE["exercises"] / f"{slug}.ipynb").read_bytes()),
    }
    hand_in(course, submissions)
    code, stderr = finish(leaklab("autograde", str(course), slug))
    return code, stderr, table(course), course, slug


def test_a_course_released_in_chinese_releases_the_chinese_lessons(chinese_course):
    course = chinese_course[3]
    for slug in SLUGS:
        released = json.loads((course / "release" / slug / f"{slug}.ipynb").read_text(encoding="utf-8"))
        assert released["metadata"]["leaklab"]["language"] == "zh_CN"
        assert CJK.search("".join(released["cells"][0]["source"]))  # a str or a list of lines


def test_a_course_released_in_chinese_grades_english_and_chinese_alike(chinese_course):
    code, stderr, rows, _, _ = chinese_course
    assert code == 0, stderr[-2000:]
    assert float(rows["en-solutions-01"]["score"]) == float(rows["en-solutions-01"]["max_score"]) > 0
    assert float(rows["zh-exercises-01"]["score"]) == 0


def test_each_submission_is_told_in_its_own_language(chinese_course):
    """The Chinese exercise's failures and feedback page in Chinese, the English solution's in English."""
    course, slug = chinese_course[3], chinese_course[4]
    graded = course / "autograded" / "zh-exercises-01" / slug / f"{slug}.ipynb"
    failures = [
        o["evalue"] for c in json.loads(graded.read_text(encoding="utf-8"))["cells"] for o in c.get("outputs", [])
        if o.get("output_type") == "error" and o["ename"] == "AssertionError"
    ]  # fmt: skip
    assert failures and all(CJK.search(failure) for failure in failures)
    chinese, english = (
        (course / "feedback" / student / slug / f"{slug}.html").read_text(encoding="utf-8")
        for student in ("zh-exercises-01", "en-solutions-01")
    )
    assert "得分" in chinese and "Score:" not in chinese
    assert "Score:" in english and "得分" not in english
