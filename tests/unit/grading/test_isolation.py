from __future__ import annotations

import asyncio

import answers
import answers_02
import answers_03
import pytest
from answers import (
    BLOCKS_CALLER,
    BUFFERED,
    HANGS,
    HIDDEN_FROM_REGISTRY,
    IN_A_SUBPROCESS,
    LEAKY,
    NO_CHILD,
    PATCHED_BUILTINS,
    PATCHED_COUNTERS,
    REWRITES_THE_WITNESS,
    STOPS_TRACEMALLOC,
    STUB,
    TASK_GROUP,
    TASK_GROUP_WITH_THREAD,
    UNREFERENCED,
)

from leaklab import run_isolated
from leaklab.grading import sandbox
from leaklab.grading.isolation import IsolatedRun, RunFailed
from leaklab.grading.results import Reason
from leaklab.scenarios import load

# The hidden tests' traffic, drawn by Hypothesis for each answer (`traffic="generated"`), besides the planned burst.
TRAFFIC = {"planned": {}, "drawn": {"traffic": "generated", "requests": 90}}


def run(source: str, **options):
    return run_isolated(source, scenario="forgotten_cancel", function="handle_request", **options)


def all_passed(outcome: dict, name: str) -> bool:
    passed, total = outcome[name]
    return passed == total > 0


@pytest.mark.parametrize(
    "source",
    [LEAKY, PATCHED_COUNTERS, PATCHED_BUILTINS, HIDDEN_FROM_REGISTRY, UNREFERENCED],
    ids=["leaky", "patched_counters", "patched_builtins", "hidden_from_registry", "unreferenced"],
)
def test_leaky_handlers_leave_one_task_and_one_result_per_give_up(source):
    result = run(source)
    assert result.error is None
    assert result.leftover_tasks == 20  # 40 requests, every other one gives up
    assert result.retained_bytes_per_request > 16 * 1024
    assert "run_query  <answer cell>:" in result.leak_report and "20 @ task" in result.leak_report
    assert all(all_passed(result.outcome, name) for name in ("completed_with_result", "gave_up_as_specified"))


@pytest.mark.parametrize(
    "source", [BUFFERED, TASK_GROUP, TASK_GROUP_WITH_THREAD], ids=["buffered", "task_group", "with_to_thread"]
)
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_fixes_leave_nothing_and_behave(source, traffic):
    result = run(source, **TRAFFIC[traffic])
    assert result.error is None
    assert (result.leftover_tasks, result.leftover_threads, result.died_unseen) == (0, 0, 0)
    assert result.retained_bytes_per_request < 4096
    for name in ("completed_with_result", "gave_up_as_specified", "query_ran_once", "gave_up_promptly"):
        assert all_passed(result.outcome, name), name


def test_a_coroutine_left_waiting_without_a_task_is_a_leftover():
    """A child stepped by hand, not by an asyncio.Task, and parked on a future nothing resolves: asyncio's
    registry never sees it, the collector's list of suspended coroutines does."""
    result = run(answers.TASKLESS_CHILD)
    assert result.error is None and result.leftover_tasks == 20  # one per request that gave up
    assert "20 @ coroutine (no task) waiting on Future" in result.leak_report
    assert "run_query  <answer cell>:" in result.leak_report


def test_processes_an_answer_leaves_running_are_counted_from_outside():
    """Its own process leaves nothing; the processes it started (one of them orphaned) are still there."""
    result = run(IN_A_SUBPROCESS)
    assert result.error is None and (result.leftover_tasks, result.leftover_threads) == (0, 0)
    assert result.leftover_processes >= (20 if sandbox.active() else 10)  # unsandboxed, an orphan leaves the tree
    assert "still running, started in the run" in result.leak_report and "time.sleep(600)" in result.leak_report
    with pytest.raises(AssertionError, match="processes were left running after the burst"):
        result.require_no_leftovers()


# A handler that first tries something that fails in a task of its own (a cache, say), then queries.
TRIES_A_CACHE = """
async def handle_request(request: Request) -> Result:
    async def from_cache() -> Result:
        raise LookupError("not cached")

    cached = asyncio.create_task(from_cache())
    try:
        return await cached
    except LookupError:
        pass
    async with asyncio.timeout(request.deadline_ms / 1000):
        return await slow_query(request)
"""


def test_a_task_whose_exception_its_handler_retrieved_is_no_problem():
    result = run(TRIES_A_CACHE)
    assert (result.error, result.leftover_tasks, result.died_unseen) == (None, 0, 0)
    result.require_no_leftovers()


@pytest.mark.parametrize(
    "made",
    ["asyncio.create_task(from_cache())", "asyncio.Task(from_cache())"],
    ids=["held_by_the_factory", "freed_before_the_count"],
)
def test_a_task_that_died_of_an_exception_nobody_retrieved_fails_nothing_left_behind(made):
    """Found among the run's tasks, or, for one made without the loop's task factory and freed as soon as
    it ended, through the loop's exception handler."""
    dropped = TRIES_A_CACHE.replace(
        "    cached = asyncio.create_task(from_cache())\n    try:\n        return await cached\n"
        "    except LookupError:\n        pass\n",
        f"    {made}\n",
    )
    result = run(dropped)
    died = 40 + 2  # one per request, the warm-up's two included
    assert (result.error, result.leftover_tasks, result.died_unseen) == (None, 0, died)
    assert f"{died} @ handle_request.<locals>.from_cache: LookupError" in result.leak_report
    with pytest.raises(AssertionError, match=f"{died} tasks it started died of an exception nobody retrieved"):
        result.require_no_leftovers()


def test_a_child_released_by_the_clients_own_signal_is_caught():
    """The client's signals are not on the request: a child that waits for the client to go dies of it."""
    result = run(answers.WAITS_ON_THE_CLIENT)
    assert result.error is None and result.died_unseen > 0
    assert "AttributeError" in result.leak_report
    with pytest.raises(AssertionError):
        result.require_no_leftovers()


@pytest.mark.parametrize(
    ("scenario", "source", "function"),
    [
        ("forgotten_cancel", answers.DETECTS_THE_NOTEBOOK, "handle_request"),
        ("skipped_stop", answers_02.DETECTS_THE_NOTEBOOK, "Worker"),
    ],
    ids=["01", "02"],
)
def test_an_answer_that_looks_for_ipykernel_finds_it_in_the_isolated_run(scenario, source, function):
    """A kernel's packages are in the run's `sys.modules` (loaded only if touched): an answer that behaves right
    only where "ipykernel" is missing behaves as in the notebook, and is graded on that."""
    result = run_isolated(source, scenario=scenario, function=function)
    assert result.error is None
    if scenario == "forgotten_cancel":
        assert result.leftover_tasks == 20
    else:
        assert result.outcome["stops_promptly"] == [0, 1] and result.leftover_threads == 1


@pytest.mark.parametrize("source", [BLOCKS_CALLER, REWRITES_THE_WITNESS], ids=["blocks", "rewrites_the_witness"])
def test_a_handler_that_keeps_its_caller_waiting_is_caught(source):
    """Also when it rewrites the request's fields: what the query saw is not kept on the request."""
    result = run(source)
    assert result.leftover_tasks == 0
    assert all_passed(result.outcome, "completed_with_result")
    assert result.outcome["gave_up_promptly"][0] == 0
    assert "kept its caller waiting" in result.explain()


@pytest.mark.parametrize("source", [NO_CHILD, STUB], ids=["no_child", "stub"])
def test_a_handler_that_serves_nothing_is_caught(source):
    result = run(source)
    assert result.leftover_tasks == 0
    assert result.outcome["completed_with_result"][0] == 0
    assert result.outcome["query_ran_once"][0] == 0


def test_the_burst_shape_is_configurable():
    result = run(LEAKY, requests=30, give_up_every=3)
    assert result.outcome["requests"] == 30 + 2 and result.leftover_tasks == 10  # the warm-up's 2 judged too


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def handle_request(:\n", "SyntaxError"),
        ("x = 1\n", "does not define 'handle_request'"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("async def handle_request(request):\n    return undefined_helper()\n", None),
    ],
)
def test_broken_answers_are_reported_not_crashed(source, message):
    result = run(source)
    if message:
        assert message in (result.error or "")
    else:  # a NameError inside the handler is a behaviour problem of every request
        assert result.outcome["completed_with_result"][0] == 0 and "NameError" in result.explain()


def test_runs_are_cached_per_source_and_options():
    assert run(TASK_GROUP) is run(TASK_GROUP)
    assert run(TASK_GROUP) is not run(TASK_GROUP, requests=10)


def test_require_passes_a_fix_and_names_what_failed_otherwise():
    fixed = run(TASK_GROUP)
    fixed.require("completed_with_result", "gave_up_as_specified", "query_ran_once", "gave_up_promptly")
    fixed.require_no_leftovers()
    fixed.require_retained_below(4096)
    leaky = run(LEAKY)
    with pytest.raises(AssertionError, match="left behind after the burst"):
        leaky.require_no_leftovers()
    with pytest.raises(AssertionError, match=r"KiB per request is still held after the burst \(limit 4 KiB\)"):
        leaky.require_retained_below(4096)
    with pytest.raises(AssertionError, match="gave up promptly: 0 of 20 requests"):
        run(BLOCKS_CALLER).require("gave_up_promptly")
    with pytest.raises(AssertionError, match="does not define"):
        run("x = 1\n").require()


def test_a_property_failed_by_the_stub_says_no_answer_yet_not_a_partial_count():
    # GIVEN a run where requests that do not reach the answer passed and the rest met the stub,
    # WHEN a test requires the property, THEN it says there is no answer yet, with the stub's problems.
    problems = ["responses right: /price 3: answered 500 'internal error: NotImplementedError'"]
    stubbed = IsolatedRun(outcome={"responses_right": [104, 200], "problems": problems})
    with pytest.raises(AssertionError, match=r"responses right: no answer yet: NotImplementedError") as failed:
        stubbed.require("responses_right")
    assert "104" not in str(failed.value) and "NotImplementedError" in str(failed.value)
    wrong = IsolatedRun(outcome={"responses_right": [104, 200], "problems": ["responses right: /price 3: 41"]})
    with pytest.raises(AssertionError, match="responses right: 104 of 200"):
        wrong.require("responses_right")


def test_a_handler_that_never_answers_is_caught_without_waiting_for_a_clock():
    result = run(HANGS)
    assert result.outcome["answered"] == 0
    assert result.leftover_tasks > 0 and "handle_request  <answer cell>:3" in result.leak_report
    with pytest.raises(AssertionError, match="42 requests never got an answer"):  # the warm-up's 2 too
        result.require()


def test_an_answer_that_switches_tracemalloc_off_gets_an_error_not_a_pass():
    result = run(STOPS_TRACEMALLOC)
    assert "stopped tracemalloc" in result.error
    with pytest.raises(AssertionError, match="stopped tracemalloc"):
        result.require()


def test_an_unknown_scenario_is_reported():
    result = run_isolated(TASK_GROUP, scenario="no_such_scenario", function="handle_request")
    assert result.error == "no scenario named 'no_such_scenario'"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("hoard = bytearray(2**62)\n", Reason.MEMORY_LIMIT),
        ("raise SystemExit\n", Reason.ANSWER_FAILED),
        ("import os\n\nos._exit(3)\n", Reason.ANSWER_FAILED),
        ('raise RuntimeError("can\'t start new thread")\n', Reason.PROCESS_LIMIT),
        ("raise ValueError('a wrong answer')\n", Reason.ANSWER_FAILED),
    ],
    ids=["memory", "system_exit", "os_exit", "threads", "error"],
)
def test_a_run_that_fails_carries_its_reason_as_data(source, reason):
    """The reason comes from the exception's type or the exit, never from its message's words."""
    result = run(source)
    assert result.error and result.reason is reason
    with pytest.raises(RunFailed) as failed:
        result.require("completed_with_result")
    assert failed.value.reason is reason


def test_a_burst_that_never_finishes_is_a_timeout():
    unfinished = IsolatedRun(outcome={"problems": []})
    with pytest.raises(RunFailed, match="never checked") as failed:
        unfinished.require("completed_with_result")
    assert failed.value.reason is Reason.TIMEOUT
    stuck = IsolatedRun(outcome={"problems": []}, leak_report="1 @ task\n#\tcall  <answer cell>:7")
    with pytest.raises(RunFailed, match=r"where it was stuck:\n1 @ task\n#\tcall  <answer cell>:7"):
        stuck.require("completed_with_result")  # the stacks of what was stuck, as a leak report shows them
    # what the burst most likely waits in: a call, unless the scenario names it (lesson 04: its pool)
    assert "(a call that never returns?)" in str(failed.value)
    pool = IsolatedRun(outcome={"problems": [], "unfinished": "a pool whose stop() never returns?"})
    with pytest.raises(RunFailed, match=r"did not finish \(a pool whose stop\(\) never returns\?\)"):
        pool.require("stop_waits_for_workers")
    burst, summary = load("lifeless_pool").probe(object)
    burst.close()  # built, never run
    assert "stop() or join()" in summary()["unfinished"]


def test_a_run_stopped_at_its_time_limit_shows_where_each_thread_was_stuck(monkeypatch):
    """The whole run overstays (a call that blocks the loop's own thread): the stacks come from the
    child's faulthandler, grouped with counts."""
    monkeypatch.setenv("LEAKLAB_RUN_TIMEOUT", "0")  # the shortest the grader allows
    blocks = """
import threading
import time


def wait_here():
    threading.Event().wait()


for _ in range(2):
    threading.Thread(target=wait_here, daemon=True).start()


async def handle_request(request: Request) -> Result:
    time.sleep(3600)  # blocks the event loop's thread: nothing in the run can stop it
"""
    result = run(blocks)
    assert result.reason is Reason.TIMEOUT and "did not end within" in result.error
    assert "where it was stuck:\n" in result.error
    assert "2 threads:" in result.error and "in wait_here" in result.error  # grouped: one stack, counted
    assert "in handle_request" in result.error and "leaklab/grading" not in result.error


def _cell(source: str, name: str, scenario: str = "") -> object:
    """`source` run as IPython runs a cell: its lines in `linecache` under a file name no file backs (the
    names a scenario's answer may use defined, as the lesson's set-up cell defines them)."""
    import linecache

    from leaklab.scenarios import answer_namespace, load

    filename = f"<ipython-input-{abs(hash(source))}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict = {"__name__": "__main__", "asyncio": asyncio}
    namespace.update(answer_namespace(load(scenario)) if scenario else {})
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


@pytest.mark.parametrize(
    ("scenario", "source"),
    [
        ("forgotten_cancel", answers.DECORATED),
        ("forgotten_cancel", answers.PARTIAL),
        ("forgotten_cancel", answers.CALLABLE_OBJECT),
        ("skipped_stop", answers_02.FROM_A_FACTORY),
        ("hung_call", answers_03.DECORATED_NO_WRAPS),
        ("hung_call", answers_03.LAMBDA),
    ],
    ids=["decorated", "partial", "callable_object", "class_from_a_factory", "decorated_no_wraps", "lambda"],
)
def test_an_answer_is_run_under_the_name_the_task_gives_it_whatever_its_own_name(scenario, source):
    """As a test cell calls it in the kernel: `run_isolated(handle_request, ...)`, with the object the
    notebook binds to that name; its `__name__` may be another's (a decorator's wrapper, `_Worker`)."""
    from leaklab.scenarios import graded_properties, load

    answer = _cell(source, load(scenario).ANSWER, scenario)
    result = run_isolated(answer, scenario=scenario)
    assert result.error is None
    assert all(passed == total for passed, total in graded_properties(result.outcome).values()), result.outcome


@pytest.mark.parametrize(
    "source",
    [
        # a method reused from the lesson's leaky class, written first in the body
        "from leaklab.scenarios.week_in_production import LeakyService\n\n\n"
        "class Service:\n    record = LeakyService.record\n\n    def own(self):\n        pass\n",
        # nothing of its own at all: found by its class statement
        "from leaklab.scenarios.week_in_production import LeakyService\n\n\nclass Service(LeakyService):\n    pass\n",
    ],
    ids=["reused_method", "inherits_everything"],
)
def test_a_class_answer_travels_as_its_own_cell(source):
    from leaklab.grading.isolation import answer_source

    assert answer_source(_cell(source, "Service")) == source


def test_a_verdict_judges_each_visible_check_and_never_passes_a_stub():
    fixed = run_isolated(BUFFERED, scenario="forgotten_cancel", function="handle_request")
    leaky = run_isolated(LEAKY, scenario="forgotten_cancel", function="handle_request")
    stub = run_isolated(STUB, scenario="forgotten_cancel", function="handle_request")
    checks = ("completed_with_result", "gave_up_promptly")
    assert fixed.verdict(*checks, no_leftovers=True, retained_below=4096).passed
    told = leaky.verdict(*checks, no_leftovers=True, retained_below=4096)
    assert not told.passed and str(told).startswith("✗ not yet: 2 of 4 visible checks fail")
    assert [failure is None for _, failure in told.checks] == [True, True, False, False]
    assert str(stub.verdict(*checks)).startswith("✗ no answer yet")


def test_a_cell_is_compiled_as_the_kernel_compiles_it_not_with_the_graders_future_imports():
    """The grader's modules use `from __future__ import annotations`; a cell compiled under it saw its
    annotations as strings, and a dataclass's `_: KW_ONLY` became a field (a right answer scored 0/9)."""
    from leaklab.grading.child import run_cell

    namespace: dict[str, object] = {"__name__": "__main__"}
    cell = "from dataclasses import KW_ONLY, dataclass\n\n@dataclass\nclass A:\n    x: int\n    _: KW_ONLY\n"
    cell += "    y: int = 0\n"
    run_cell(cell, "<answer cell>", namespace, None)
    assert namespace["A"](1, y=2).y == 2 and namespace["A"].__annotations__["x"] is int
