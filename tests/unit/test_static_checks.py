from __future__ import annotations

import ast
import asyncio
import importlib
import json
import pkgutil
import subprocess
from pathlib import Path

import pytest
from answers_07 import (
    ANY_ENCLOSING,
    ANY_NOT_CALL,
    ANY_SLEEP_IN_WHILE,
    ASYNC_FOR_NOT_LOOP,
    CHEAT_IMPORT,
    CRASHES_WITHOUT_LOOP,
    FIXED,
    FLAGS_EVERY_HANDLER,
    FLAGS_EVERY_SLEEP,
    FUNCTIONS_ONLY,
    IS_FALSE_IS_A_WORKER_LOOP,
    KNOWN_SLEEPS,
    MISSES_ASYNC,
    NO_SCOPE_RESET,
    ONLY_CONTINUE,
    ONLY_DEF_RESETS,
    ONLY_IS_SET,
    ONLY_WHILE_TRUE,
    ORELSE_IN_LOOP,
    READS_THE_KEY,
    REGEX_LOOP_TEST,
    SAYS_NOTHING,
    SET_ORDER,
    SLEEP_SUBSTRING,
    SMART_BREAK,
    STOP_OBJECTS_ONLY,
    STOPS_AT_NESTED_TRY,
    STUB,
    TEXT_MATCH,
    UNSORTED_DUPLICATES,
    WAIT_PREFIX,
    WALK_INTO_DEFS,
    WALK_ORDER,
)

import leaklab.scenarios
from leaklab import run_isolated
from leaklab.scenarios import static_checks
from leaklab.scenarios.static_checks import (
    LEAKY_CODE,
    RUFF_RULES,
    VISIBLE,
    leaky_async_retry,
    leaky_audit_handler,
    leaky_blocking_retry,
    leaky_code,
    ruff_command,
    snippets_from,
    survey,
)

PROPERTIES = ("flags_leaky", "passes_correct", "right_lines", "async_flavour")
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "07_static_checks.ipynb"


def hidden_option() -> dict[str, str]:
    """The `snippets=` dict the notebook's hidden tests pass: the same in every test cell (one run)."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    options = []
    for cell in cells:
        if not cell["metadata"].get("nbgrader", {}).get("grade"):
            continue
        text = "".join(cell["source"])
        region = text.split("### BEGIN HIDDEN TESTS\n")[1].split("### END HIDDEN TESTS")[0]
        (value,) = [
            node.value
            for node in ast.parse(region).body
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["hidden"]
        ]
        options.append(ast.literal_eval(value))
    assert len(options) == 4 and all(option == options[0] for option in options)
    return options[0]


HIDDEN_OPTION = hidden_option()
HIDDEN = snippets_from(HIDDEN_OPTION)


def checker_from(source: str):
    """The `find_deaf_retries` an answer cell defines, run here in the test's own process."""
    namespace = {"ast": ast, "asyncio": asyncio}
    exec(compile(source, "<answer cell>", "exec"), namespace)
    return namespace["find_deaf_retries"]


# --- the survey: ruff over every lesson's leaky code ------------------------------------------------


def ruff_on_whole_modules() -> set[tuple[str, int, str]]:
    """ruff run the plain way, over the scenario modules' whole files: (file, line, rule) found."""
    files = sorted({str(code.path) for code in leaky_code()})
    command = [*ruff_command(), "check", "--isolated", "--select", RUFF_RULES, "--ignore-noqa"]
    command += ["--output-format", "json", "--no-cache", "--exit-zero", *files]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    return {(f["filename"], f["location"]["row"], f["code"]) for f in json.loads(done.stdout)}


def test_the_survey_reports_what_ruff_finds_in_the_modules_themselves():
    # GIVEN ruff over each scenario module's whole file, and the survey (ruff over each extracted piece)
    whole = ruff_on_whole_modules()
    rows = survey().rows
    # THEN within each leaky piece's lines, both found the same rules at the same lines
    for row in rows:
        span = range(row.code.first_line, row.code.first_line + row.code.source.count("\n"))
        expected = {(rule, line) for path, line, rule in whole if path == str(row.code.path) and line in span}
        assert set(row.ruff) == expected, row.code.label
    by_label = {row.code.label: row for row in rows}
    assert [rule for rule, _ in by_label["static_checks.leaky_audit_handler"].ruff] == ["RUF006"]
    assert [rule for rule, _ in by_label["static_checks.leaky_blocking_retry"].ruff] == ["ASYNC251"]
    # What the notebook's prose says: ruff sees none of the leaks the earlier lessons measured.
    assert all(not row.ruff for row in rows if row.code.scenario != "static_checks")
    assert not by_label["static_checks.leaky_async_retry"].ruff


def test_every_scenario_module_that_exists_has_its_leaky_code_listed():
    modules = {m.name for m in pkgutil.iter_modules(leaklab.scenarios.__path__) if not m.name.startswith("_")}
    missing = sorted(modules - set(LEAKY_CODE))
    assert not missing, f"add the leaky code of {missing} to static_checks.LEAKY_CODE (lesson 07's table)"
    for scenario, leaks in LEAKY_CODE.items():
        module = importlib.import_module(f"leaklab.scenarios.{scenario}")
        for leak in leaks:
            assert callable(getattr(module, leak.name)), f"{scenario}.{leak.name}"


def test_the_table_renders_every_row_as_markdown():
    table = survey()._repr_markdown_()
    assert table.count("\n") == len(leaky_code()) + 1
    assert "| 02 | `skipped_stop.LeakyWorker` |" in table and "**RUF006** (line" in table
    assert repr(survey()) == table


# The modules written before this lesson, and its own: their verdicts are pinned down here.
SETTLED = {"forgotten_cancel", "skipped_stop", "hung_call", "lifeless_pool", "static_checks"}


def test_the_checker_column_finds_the_retry_loops_and_nothing_else():
    rows = survey(checker_from(FIXED)).rows
    assert all(isinstance(row.checker, list) for row in rows)
    flagged = {row.code.label for row in rows if row.checker and row.code.scenario in SETTLED}
    assert flagged == {
        "skipped_stop.article_worker",  # a false positive of the rule: its `continue` goes back to the stop check
        "skipped_stop.LeakyWorker",
        "static_checks.leaky_blocking_retry",
        "static_checks.leaky_async_retry",
    }
    worker = next(row for row in rows if row.code.label == "skipped_stop.LeakyWorker")
    (line,) = worker.checker
    assert worker.code.path.read_text().splitlines()[line - 1].strip() == "except DependencyError:"


def test_a_checker_that_raises_is_reported_in_its_column():
    rows = survey(checker_from(STUB)).rows
    assert {row.checker_text() for row in rows} == {"raised NotImplementedError"}


# --- this lesson's own leaky code really leaks ------------------------------------------------------


def test_the_fire_and_forget_handler_leaves_a_task_nobody_holds():
    async def main() -> None:
        before = asyncio.all_tasks()
        assert await leaky_audit_handler(1) == "request 1 served"
        orphans = asyncio.all_tasks() - before
        assert len(orphans) == 1 and not next(iter(orphans)).done()  # still running; the handler has returned
        await asyncio.gather(*orphans)

    asyncio.run(main())


def test_the_async_retry_is_deaf_to_its_stop_event():
    def failing() -> None:
        raise OSError("down")

    async def main() -> bool:
        stop = asyncio.Event()
        task = asyncio.ensure_future(leaky_async_retry(failing, stop))
        await asyncio.sleep(0.01)
        stop.set()
        await asyncio.sleep(0.05)  # two back-offs and more: a loop that looked at `stop` would have ended
        still_retrying = not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return still_retrying

    assert asyncio.run(main())


def test_the_blocking_retry_stalls_every_other_task():
    ticks = []
    failures = iter([OSError(), OSError(), OSError()])

    async def ticker() -> None:
        while True:
            ticks.append(len(ticks))
            await asyncio.sleep(0)

    def flaky() -> str:
        failure = next(failures, None)
        if failure:
            raise failure
        return "done"

    async def main() -> int:
        clock = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        before = len(ticks)
        assert await leaky_blocking_retry(flaky, asyncio.Event()) == "done"
        during = len(ticks) - before  # three back-offs: a loop that yielded would have let the ticker run
        clock.cancel()
        await asyncio.gather(clock, return_exceptions=True)
        return during

    assert asyncio.run(main()) == 0


# --- the graded snippets --------------------------------------------------------------------------


@pytest.mark.parametrize("snippets", [VISIBLE, HIDDEN], ids=["visible", "hidden"])
def test_snippets_parse_and_their_deaf_lines_are_except_lines(snippets):
    for snippet in snippets:
        tree = ast.parse(snippet.source)
        handlers = {node.lineno for node in ast.walk(tree) if isinstance(node, ast.ExceptHandler)}
        assert set(snippet.deaf) <= handlers, snippet.name
        assert "<- deaf" not in snippet.source
    kinds = {(bool(s.deaf), s.flavour) for s in snippets}
    assert kinds == {(True, "thread"), (False, "thread"), (True, "asyncio"), (False, "asyncio")}
    assert any("while" not in s.source for s in snippets if not s.deaf)  # one without a loop at all
    assert all(s.case and "# case:" not in s.source for s in snippets)  # each says what it is, to no checker


def test_hidden_snippets_are_not_the_visible_ones():
    assert not {s.name for s in VISIBLE} & {s.name for s in HIDDEN}
    assert not {s.source for s in VISIBLE} & {s.source for s in HIDDEN}


def test_the_hidden_snippets_are_not_in_the_package_an_answer_can_import():
    assert not hasattr(static_checks, "HIDDEN")
    files = Path(static_checks.__file__).parent.parent.rglob("*.py")
    package = "\n".join(line.strip() for path in files for line in path.read_text().splitlines())
    for snippet in HIDDEN:
        assert snippet.name not in package, snippet.name
        assert "\n".join(line.strip() for line in snippet.source.splitlines()) not in package, snippet.name


def test_the_flavour_of_a_marked_snippet_is_read_from_its_text():
    for snippet in VISIBLE:
        text = f"# case: {snippet.case}\n" + "\n".join(
            f"{line}  # <- deaf" if n in snippet.deaf else line for n, line in enumerate(snippet.source.splitlines(), 1)
        )
        assert snippets_from({snippet.name: text}) == [snippet]
    with pytest.raises(ValueError, match="snippets must be"):
        snippets_from("hidden")


def test_the_right_check_agrees_with_every_snippet():
    check = checker_from(FIXED)
    for snippet in VISIBLE + HIDDEN:
        assert check(snippet.source) == list(snippet.deaf), snippet.name


def test_the_notebook_examples_hold_for_the_right_check():
    check = checker_from(FIXED)
    assert check("") == [] and check("x = 1\n") == []
    assert check("while True:\n    try:\n        pass\n    except OSError:\n        time.sleep(1)\n") == [4]


# --- grading in a fresh process -------------------------------------------------------------------


def failed(source: str, snippets: str | dict[str, str]) -> set[str]:
    result = run_isolated(source, scenario="static_checks", function="find_deaf_retries", snippets=snippets)
    assert result.error is None
    return {name for name in PROPERTIES if result.outcome[name][0] < result.outcome[name][1]}


# Each answer, and the properties it fails on the visible snippets and on the hidden ones.
ANSWERS = {
    "fixed": (FIXED, set(), set()),
    # It flags a sleep the handler follows with a look at the stop signal, in asyncio too.
    "flags_every_sleep": (FLAGS_EVERY_SLEEP, *[{"passes_correct", "right_lines", "async_flavour"}] * 2),
    "only_continue": (ONLY_CONTINUE, *[{"flags_leaky", "right_lines", "async_flavour"}] * 2),
    "misses_async": (MISSES_ASYNC, {"async_flavour"}, {"async_flavour"}),
    "only_while_true": (ONLY_WHILE_TRUE, *[{"flags_leaky", "right_lines", "async_flavour"}] * 2),
    "crashes_without_loop": (CRASHES_WITHOUT_LOOP, *[{"passes_correct", "async_flavour"}] * 2),
    "says_nothing": (SAYS_NOTHING, set(PROPERTIES), set(PROPERTIES)),
    "stub": (STUB, set(PROPERTIES), set(PROPERTIES)),
    # The rules the notebook's three examples do not show: a visible snippet each, so that the verify
    # cell's verdict (the visible run) tells them from the right check too, and hidden ones besides.
    "any_enclosing": (ANY_ENCLOSING, *[{"passes_correct", "async_flavour"}] * 2),
    "no_scope_reset": (NO_SCOPE_RESET, *[{"passes_correct", "async_flavour"}] * 2),
    "walk_into_defs": (
        WALK_INTO_DEFS,
        {"flags_leaky", "right_lines"},
        {"flags_leaky", "passes_correct", "right_lines"},
    ),
    "any_not_call": (ANY_NOT_CALL, {"passes_correct"}, {"passes_correct"}),
    "regex_loop_test": (REGEX_LOOP_TEST, {"passes_correct"}, {"passes_correct", "async_flavour"}),
    # (c) and (d) compare the list as returned: [5, 5] is not [5].
    "unsorted_duplicates": (UNSORTED_DUPLICATES, *[{"right_lines", "async_flavour"}] * 2),
    # (d) has correct asyncio snippets too: flagging every handler, or every sleep in a `while`, fails it.
    "flags_every_handler": (FLAGS_EVERY_HANDLER, *[{"passes_correct", "right_lines", "async_flavour"}] * 2),
    "any_sleep_in_while": (ANY_SLEEP_IN_WHILE, set(PROPERTIES), set(PROPERTIES)),  # a `continue` without a sleep
    "text_match": (TEXT_MATCH, set(PROPERTIES), set(PROPERTIES)),
    "only_def_resets": (ONLY_DEF_RESETS, *[{"passes_correct", "async_flavour"}] * 2),
    # A loop's `else:` is not its body; `async for` is a loop; lines sorted; `wait_for` and `count_sleeps`
    # are neither `wait` nor `sleep`.
    "orelse_in_loop": (ORELSE_IN_LOOP, {"passes_correct"}, {"flags_leaky", "passes_correct", "right_lines"}),
    "async_for_not_loop": (ASYNC_FOR_NOT_LOOP, *[{"passes_correct", "async_flavour"}] * 2),
    "walk_order": (WALK_ORDER, {"right_lines"}, {"right_lines"}),
    "wait_prefix": (WAIT_PREFIX, {"async_flavour"}, {"async_flavour"}),
    "sleep_substring": (SLEEP_SUBSTRING, {"passes_correct"}, {"passes_correct"}),
    # Cases only hidden snippets hold: a handler that waits on the stop signal and `continue`s, lines a set
    # gives out of order, a sleep through another object, a retry in a nested `try`, a script's loop.
    "only_is_set": (ONLY_IS_SET, set(), {"passes_correct", "async_flavour"}),
    "set_order": (SET_ORDER, set(), {"right_lines"}),
    "known_sleeps": (KNOWN_SLEEPS, set(), {"right_lines"}),
    "stops_at_nested_try": (STOPS_AT_NESTED_TRY, set(), {"right_lines"}),
    "functions_only": (FUNCTIONS_ONLY, set(), {"flags_leaky", "right_lines"}),
    "stop_objects_only": (STOP_OBJECTS_ONLY, set(), {"passes_correct"}),  # a `wait` on anything consults
    "is_false_is_a_worker_loop": (IS_FALSE_IS_A_WORKER_LOOP, set(), {"passes_correct"}),  # not `while not ...`
    # a `break` or `continue` of a loop inside the handler counts
    "smart_break": (SMART_BREAK, set(), {"passes_correct", "flags_leaky", "right_lines"}),
    # Only the hidden snippets tell a cheat from the right check.
    "cheat_import": (CHEAT_IMPORT, set(), set(PROPERTIES)),
    # The visible snippets are the lesson's own; the hidden ones' marks never reach the answer's process.
    "reads_the_key": (READS_THE_KEY, set(), set(PROPERTIES)),
}


@pytest.mark.parametrize("name", ANSWERS)
@pytest.mark.parametrize("snippets", ["visible", "hidden"])
def test_each_answer_fails_exactly_the_properties_it_breaks(name, snippets):
    source, visible, hidden = ANSWERS[name]
    if snippets == "visible":
        assert failed(source, "visible") == visible
    else:
        assert failed(source, HIDDEN_OPTION) == hidden


def test_a_crash_fails_its_snippet_and_says_so():
    result = run_isolated(CRASHES_WITHOUT_LOOP, scenario="static_checks", function="find_deaf_retries")
    assert result.outcome["passes_correct"] == [11, 15]  # no loop, a loop's `else:`, a `def` or `async def` in one
    with pytest.raises(AssertionError, match=r"'config_no_loop': raised IndexError: .* \(correct: "):
        result.require("passes_correct")
    result.require("flags_leaky", "right_lines")


def test_a_check_that_flags_nothing_passes_nothing():
    result = run_isolated(SAYS_NOTHING, scenario="static_checks", function="find_deaf_retries")
    with pytest.raises(AssertionError, match="flags none of the leaky snippets either"):
        result.require("passes_correct")


def test_the_module_exports_what_the_answer_cell_may_use():
    assert static_checks.__all__ == ["ast"]
