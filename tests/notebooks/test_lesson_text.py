"""What every lesson's authored source must hold: the article's Go and its critique, a prediction before a
plot, hints, the corrected Go, the checklist, references; and a verify cell that judges exactly what the
visible tests judge. Read from notebooks/ as JSON: no kernel."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ARTICLE = "当Goroutine成为内存黑洞"
# The headings every lesson has, in this order (docs/authoring.md explains each).
SECTIONS = (
    "### The article's Go",
    "### What it really does",
    "### Predict",
    "### Hints",
    "### The Go, corrected",
    "## Checklist",
    "## References",
)


def cells(slug: str) -> list[dict]:
    nb = json.loads((ROOT / "notebooks" / f"{slug}.ipynb").read_text(encoding="utf-8"))
    return [{**cell, "text": "".join(cell["source"])} for cell in nb["cells"]]


def section(slug: str, heading: str) -> str:
    """The markdown under `heading`, up to the next heading of the same or a higher level."""
    markdown = "\n".join(cell["text"] for cell in cells(slug) if cell["cell_type"] == "markdown")
    level = heading.split()[0]
    found = re.search(rf"^{re.escape(heading)}[^\n]*\n(.*?)(?=^#{{1,{len(level)}}} |\Z)", markdown, re.M | re.S)
    assert found, f"{slug}: no {heading!r} section"
    return found.group(1)


@pytest.mark.parametrize("slug", LESSONS)
def test_the_sections_are_there_in_order(slug):
    markdown = "\n".join(cell["text"] for cell in cells(slug) if cell["cell_type"] == "markdown")
    at = [re.search(rf"^{re.escape(heading)}", markdown, re.M) for heading in SECTIONS]
    missing = [heading for heading, found in zip(SECTIONS, at, strict=True) if not found]
    assert not missing, f"{slug} lacks {missing}"
    order = [found.start() for found in at if found]
    assert order == sorted(order), f"{slug}: sections out of order"


@pytest.mark.parametrize("slug", LESSONS)
def test_the_article_is_shown_cited_and_corrected_in_go(slug):
    shown = section(slug, "### The article's Go")
    assert "```go" in shown and ARTICLE in shown and "section" in shown
    assert "```go" in section(slug, "### The Go, corrected")
    assert len(section(slug, "### What it really does").split()) >= 40  # a critique, not a caption


@pytest.mark.parametrize("slug", LESSONS)
def test_a_prediction_comes_before_the_plot_that_answers_it(slug):
    every = cells(slug)
    asked = next(i for i, cell in enumerate(every) if cell["cell_type"] == "markdown" and "### Predict" in cell["text"])
    assert any(cell["cell_type"] == "code" and "plot_runs(" in cell["text"] for cell in every[asked + 1 :])
    assert "?" in every[asked]["text"]


@pytest.mark.parametrize("slug", LESSONS)
def test_hints_are_progressive_and_collapsed_before_the_answer(slug):
    every = cells(slug)
    answers = [i for i, cell in enumerate(every) if cell["metadata"].get("nbgrader", {}).get("solution")]
    fix = next(i for i in answers if every[i]["metadata"]["nbgrader"]["grade_id"] == f"{slug}_fix")
    since = max((i for i in answers if i < fix), default=-1)  # a diagnosis answered before the fix has its own
    assert any("### Hints" in cell["text"] for cell in every[since + 1 : fix]), f"{slug}: no hints before the fix"
    for start in (i for i, cell in enumerate(every) if "### Hints" in cell["text"]):
        text = every[start]["text"].split("### Hints", 1)[1]
        for cell in every[start + 1 :]:  # the section goes on in the markdown cells up to code or a heading
            if cell["cell_type"] != "markdown" or cell["text"].startswith("#"):
                break
            text += cell["text"]
        text = re.split(r"^#{1,3} ", text, flags=re.M)[0]
        assert 2 <= text.count("<details>") == text.count("</details>") <= 3, f"{slug}: hints at cell {start}"


@pytest.mark.parametrize("slug", LESSONS)
def test_the_checklist_asks_the_articles_two_questions(slug):
    text = section(slug, "## Checklist").lower()
    assert "exit" in text and "released" in text


@pytest.mark.parametrize("slug", LESSONS)
def test_references_are_links(slug):
    assert len(re.findall(r"\]\((https?://[^)\s]+)\)", section(slug, "## References"))) >= 2


@pytest.mark.parametrize("slug", LESSONS)
def test_listings_are_numbered_as_the_dumps_number_them(slug):
    code = [cell["text"] for cell in cells(slug) if cell["cell_type"] == "code"]
    assert not [text for text in code if "getsource(" in text], "show a listing with leaklab.show_source"


def calls_in(source: str, name: str) -> list[ast.Call]:
    """Every call of `name` (a function or a method) in a cell's source, top-level await allowed."""
    tree = compile(source, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == name
    ]


def judged(calls: list[ast.Call]) -> tuple[set[str], bool, int | None]:
    """The properties, the leftovers check and the memory limit that require*/verdict calls name."""
    properties, leftovers, retained = set(), False, None
    for call in calls:
        properties |= {arg.value for arg in call.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}
        for keyword in call.keywords:
            if keyword.arg == "no_leftovers":
                leftovers |= bool(ast.literal_eval(keyword.value))
            if keyword.arg == "retained_below":
                retained = ast.literal_eval(keyword.value)
    return properties, leftovers, retained


@pytest.mark.parametrize("slug", LESSONS)
def test_the_verify_verdict_judges_what_the_visible_tests_judge(slug):
    properties, leftovers, retained, runs = set(), False, None, set()
    for cell in cells(slug):
        grading = cell["metadata"].get("nbgrader", {})
        visible = cell["text"].split("### BEGIN HIDDEN TESTS")[0]
        if not grading.get("grade") or grading.get("solution") or "run_isolated(" not in visible:
            continue
        runs |= {ast.unparse(call) for call in calls_in(visible, "run_isolated")}
        properties |= judged(calls_in(visible, "require"))[0]
        leftovers |= bool(calls_in(visible, "require_no_leftovers"))
        for call in calls_in(visible, "require_retained_below"):
            retained = ast.literal_eval(call.args[0])
    verifying = [
        cell["text"]
        for cell in cells(slug)
        if cell["cell_type"] == "code" and ".verdict(" in cell["text"] and not cell["metadata"].get("nbgrader")
    ]
    assert len(verifying) == 1, f"{slug}: one verify cell prints the verdict"
    assert "plot_runs(" not in verifying[0], "the verdict has a cell of its own; the plot comes after it"
    assert {ast.unparse(call) for call in calls_in(verifying[0], "run_isolated")} == runs  # the same, cached run
    assert judged(calls_in(verifying[0], "verdict")) == (properties, leftovers, retained)


@pytest.mark.parametrize("slug", LESSONS)
def test_the_lesson_links_the_glossary(slug):
    assert "../docs/glossary.md" in cells(slug)[0]["text"]
    assert (ROOT / "docs" / "glossary.md").exists()
