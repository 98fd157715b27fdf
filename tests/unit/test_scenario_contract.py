"""The scenario contract: every scenario module keeps it, and `load` refuses one that does not."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import types
import typing

import pytest

from leaklab._errors import LeaklabError
from leaklab.scenarios import (
    JudgedOutside,
    Runnable,
    Scenario,
    Summary,
    WarmsUp,
    answer_namespace,
    graded_properties,
    judged_together,
    load,
    names,
    runnable,
)

EVERY_SCENARIO = ["forgotten_cancel", "skipped_stop", "hung_call", "lifeless_pool", "mystery_service"]
EVERY_SCENARIO += ["leak_monitor", "static_checks", "week_in_production"]


def test_every_scenario_module_is_found():
    assert names() == sorted(EVERY_SCENARIO)


@pytest.mark.parametrize("name", names())
def test_the_scenario_keeps_the_contract(name):
    scenario = load(name)
    assert isinstance(scenario, Scenario)
    assert list(answer_namespace(scenario)) == list(scenario.ANSWER_NAMES)

    probe = inspect.signature(scenario.probe)
    probe.bind(object())  # the handler, then keyword options only, each with a default
    first, *options = probe.parameters.values()
    assert first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD)
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in options)

    if hasattr(scenario, "warm_up"):
        assert isinstance(scenario, WarmsUp)
        inspect.signature(scenario.warm_up).bind(object())
    if hasattr(scenario, "judge") or hasattr(scenario, "sealed"):
        assert isinstance(scenario, JudgedOutside)
        sealed = scenario.sealed()
        assert json.loads(json.dumps(sealed)) == sealed  # plain data, for the child's stdin
        probe.bind(object(), **sealed)
    assert (name in runnable()) == isinstance(scenario, Runnable)
    if isinstance(scenario, Runnable):
        assert inspect.isasyncgenfunction(scenario.leaky_rounds)
        inspect.signature(scenario.leaky_rounds).bind(2)


# Probing these only builds the burst (a coroutine, closed here unstarted); hung_call and
# week_in_production start a service process when probed: their own tests read their summaries (run_isolated).
CHEAP_TO_PROBE = ["forgotten_cancel", "leak_monitor", "lifeless_pool", "mystery_service", "skipped_stop"]


def close_unstarted(burst) -> None:
    """Close a probe's coroutine unstarted (it runs nothing), and the coroutines it was handed (forgotten_cancel
    wraps its burst in another): none is left to warn that it was never awaited."""
    if inspect.iscoroutine(burst):
        for value in burst.cr_frame.f_locals.values():
            close_unstarted(value)
        burst.close()


@pytest.mark.parametrize("name", [*CHEAP_TO_PROBE, "static_checks"])
def test_a_summary_read_before_its_burst_has_the_declared_types(name, monkeypatch):
    scenario = load(name)
    monkeypatch.setattr(scenario, "_services", [], raising=False)  # mystery_service keeps what it probed
    burst, summary = scenario.probe(lambda *args: None)
    close_unstarted(burst)
    read = summary()
    if isinstance(scenario, WarmsUp):  # its warm-up is a short burst, judged with the burst's
        warm_up, warm_up_summary = scenario.warm_up(lambda *args: None)
        close_unstarted(warm_up)
        read = judged_together(read, warm_up_summary())
    if isinstance(scenario, JudgedOutside):  # what the child reports is judged in the grader's process
        read = scenario.judge(read)
    declared = typing.get_type_hints(Summary)
    for key in declared.keys() & read.keys():
        assert isinstance(read[key], typing.get_origin(declared[key]) or declared[key]), key
    assert all(isinstance(line, str) for line in read.get("problems", []))
    assert all(passed <= out_of for passed, out_of in graded_properties(read).values())


def test_graded_properties_are_the_pairs_beside_summarys_own_keys():
    summary = {"requests": 4, "answered": 4, "problems": [], "units": {"b": "calls"}, "a": [3, 4], "b": [1, 1]}
    assert graded_properties(summary) == {"a": (3, 4), "b": (1, 1)}
    with pytest.raises(TypeError, match="'c' is not a graded property"):
        graded_properties({"c": "3 of 4"})


def test_an_unknown_scenario_is_refused_with_the_known_ones():
    with pytest.raises(LeaklabError, match="no scenario named 'nosuch'; scenarios: forgotten_cancel, "):
        load("nosuch")
    with pytest.raises(LeaklabError, match="no scenario named '_checks'"):  # a helper is not a scenario
        load("_checks")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """An empty module registered as `leaklab.scenarios.fake_scenario`, removed after the test."""
    module = types.ModuleType("leaklab.scenarios.fake_scenario")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def test_a_module_without_answer_names_or_probe_is_refused_naming_both(fake):
    with pytest.raises(TypeError, match="fake_scenario does not keep the scenario contract") as refused:
        load("fake_scenario")
    assert "no ANSWER_NAMES" in str(refused.value) and "no probe(handler, **options)" in str(refused.value)
    assert "no ANSWER (the name the answer cell defines" in str(refused.value)


@pytest.mark.parametrize(
    ("parts", "named"),
    [
        ({"ANSWER_NAMES": ["Request"]}, "ANSWER_NAMES must be a tuple of str"),
        ({"ANSWER_NAMES": ("Request", "slow_query")}, "does not define: Request, slow_query"),
        ({"ANSWER_NAMES": (), "warm_up": 1}, "warm_up is not a function"),
        ({"ANSWER_NAMES": (), "leaky_rounds": None}, "leaky_rounds is not a function"),
    ],
)
def test_a_wrong_part_is_refused_by_name(fake, parts, named):
    vars(fake).update(parts, ANSWER="answer", probe=lambda handler, **options: None)
    with pytest.raises(TypeError, match=named):
        load("fake_scenario")


def test_a_module_that_keeps_the_contract_is_loaded_with_its_own_answer_names(fake):
    vars(fake).update(
        ANSWER="answer", ANSWER_NAMES=("limit",), limit=3, hidden=4, probe=lambda handler, **options: None
    )
    assert answer_namespace(load("fake_scenario")) == {"limit": 3}


def test_the_contract_and_the_scenarios_import_without_the_heavy_packages():
    heavy = ("memray", "matplotlib", "nbgrader")
    code = f"import sys, leaklab.scenarios as s; s.runnable(); print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_a_warm_up_is_judged_together_with_its_burst():
    burst = {"a": [3, 4], "b": [2, 2], "requests": 4, "answered": 4, "units": {"a": "calls"}, "problems": ["a: 1"]}
    warm_up = {"a": [1, 2], "b": [2, 2], "requests": 2, "answered": 1, "units": {}, "problems": ["a: 0"]}
    together = judged_together(burst, warm_up)
    assert together == {
        "a": [4, 6],
        "b": [4, 4],
        "requests": 6,
        "answered": 5,
        "units": {"a": "calls"},
        "problems": ["a: 0", "a: 1"],
    }
    assert "b" not in judged_together({"requests": 1, "answered": 0}, warm_up)  # the burst never reached it
