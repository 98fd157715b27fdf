"""The parent's view of an isolated run (`watch`), and the forgeries it catches: a run's messages must come
in order, and a run that says it left nothing behind must agree with what /proc shows of it."""

from __future__ import annotations

import json
import os
import threading

import answers_04
import pytest
from answers import LEAKY, TASK_GROUP

from leaklab import run_isolated
from leaklab.grading.results import Reason
from leaklab.grading.watch import Tampered, Watch


def say(watch: Watch, **message: object) -> dict | None:
    return watch.receive(json.dumps(message).encode())


def clean_run(**fields: object) -> dict:
    return {"outcome": {}, "leftover_tasks": 0, "leftover_threads": 0, "leftover_files": 0, **fields}


def test_messages_out_of_order_or_not_the_graders_are_tampering():
    with pytest.raises(Tampered, match="out of order"):
        say(Watch(os.getpid()), at="measuring")
    with pytest.raises(Tampered, match="not the grader's own"):
        Watch(os.getpid()).receive(b"{not json")
    with pytest.raises(Tampered, match="before it measured anything"):
        say(Watch(os.getpid()), at="result", run=clean_run())
    failed = clean_run(error="the answer cell raised ValueError")
    assert say(Watch(os.getpid()), at="result", run=failed) == failed  # an early error is a run's own end


def test_a_run_that_hides_a_thread_the_os_sees_is_tampering():
    watch = Watch(os.getpid())
    say(watch, at="ready", pid=os.getpid())
    say(watch, at="measuring")
    assert say(watch, at="result", run=clean_run())["leftover_threads"] == 0
    stop = threading.Event()
    left = threading.Thread(target=stop.wait)
    left.start()
    try:
        with pytest.raises(Tampered, match="1 thread left behind"):
            say(watch, at="result", run=clean_run())
        assert say(watch, at="result", run=clean_run(leftover_threads=1))["leftover_threads"] == 1
    finally:
        stop.set()
        left.join()


def test_a_run_that_hides_an_open_file_the_os_sees_is_tampering():
    watch = Watch(os.getpid())
    say(watch, at="ready", pid=os.getpid())
    say(watch, at="measuring")
    read, write = os.pipe()
    try:
        with pytest.raises(Tampered, match="2 open files left behind"):
            say(watch, at="result", run=clean_run())
    finally:
        os.close(read)
        os.close(write)


# Forgeries from inside the run's own interpreter, as an answer that has read leaklab's source writes them.
_CHANNEL = (
    "import gc\nfrom leaklab.grading.child import Channel\n\n"
    "channel = next(o for o in gc.get_objects() if isinstance(o, Channel))\n"
)
PASSING = {"completed_with_result": [40, 40], "gave_up_as_specified": [20, 20], "query_ran_once": [40, 40],
           "gave_up_promptly": [20, 20], "requests": 40, "answered": 40, "problems": []}  # fmt: skip
FORGED = {"outcome": PASSING, "leftover_tasks": 0, "leftover_threads": 0, "leftover_files": 0}
DRESSED = dict(FORGED, outcome={**PASSING, "values": {}})
FORGERIES = {
    # a result of its own, sent before the burst (its answer cell's top level)
    "early-result": _CHANNEL + f"channel.stop_at('result', run={FORGED!r})\n" + LEAKY,
    # the same from a thread it leaves running, once the burst is on: the OS sees the thread
    "result-from-a-thread": _CHANNEL
    + "import threading, time\n\n"
    + f"def forge():\n    time.sleep(0.2)\n    channel.stop_at('result', run={FORGED!r})\n\n"
    + "threading.Thread(target=forge, daemon=True).start()\n"
    + LEAKY,
    # the same, dressed as a run that only works out values (the parent knows which runs those are)
    "result-dressed-as-values": _CHANNEL
    + "import threading, time\n\n"
    + f"def forge():\n    time.sleep(0.2)\n    channel.stop_at('result', run={DRESSED!r})\n\n"
    + "threading.Thread(target=forge, daemon=True).start()\n"
    + LEAKY,
    # the encoder the result is written with, changed in place
    "encoder-in-place": "import json.encoder\n\n"
    + "_encode = json.encoder.JSONEncoder.encode\n"
    + "json.encoder.JSONEncoder.encode = lambda self, o: _encode(self, o).replace(\n"
    + "    '\"leftover_tasks\": 20', '\"leftover_tasks\": 0'\n)\n"
    + LEAKY,
    # the child's own counting function, its code swapped
    "code-swapped": "import leaklab.grading.child as child\n\n"
    + "child.Tasks.pending.__code__ = (lambda self, loop: set()).__code__\n"
    + LEAKY,
}


@pytest.mark.parametrize("name", FORGERIES)
def test_forgeries_from_inside_the_run_score_nothing_and_say_tampered(name):
    result = run_isolated(FORGERIES[name], scenario="forgotten_cancel", function="handle_request")
    assert result.reason is Reason.TAMPERED, result
    with pytest.raises(AssertionError, match="tampered"):
        result.require("completed_with_result")


def test_a_helper_of_the_checks_rebound_while_the_burst_runs_is_tampering():
    """After the answer cell's own changes are put back, its code runs again in the burst: a pool whose
    stop() rebinds the helper the check asks (`alive`) would pass "stop waits" without joining."""
    rebinding = answers_04.NO_JOIN.replace(
        "    def stop(self) -> None:\n",
        "    def stop(self) -> None:\n        import leaklab.scenarios.lifeless_pool as checks\n\n"
        "        checks.alive = lambda threads: []\n",
    )
    assert rebinding != answers_04.NO_JOIN
    result = run_isolated(rebinding, scenario="lifeless_pool", function="Pool")
    assert result.reason is Reason.TAMPERED, result
    assert "leaklab.scenarios.lifeless_pool.alive" in (result.error or "")


def test_an_honest_run_is_not_called_tampered():
    result = run_isolated(TASK_GROUP + "\n# watched\n", scenario="forgotten_cancel", function="handle_request")
    assert result.error is None and result.reason is None
    result.require_no_leftovers()


def test_an_encoder_patched_on_its_instance_changes_nothing():
    forged = (
        "import json\n\n"
        "_encode = json._default_encoder.encode\n"
        "json._default_encoder.encode = lambda o: _encode(o).replace(\n"
        "    '\"leftover_tasks\": 20', '\"leftover_tasks\": 0'\n)\n"
    )
    result = run_isolated(forged + LEAKY, scenario="forgotten_cancel", function="handle_request")
    assert result.error is None and result.leftover_tasks == 20  # measured as the leak it is


# Evasions of the measurement itself, from inside the run: the memory witness erased, a task hidden.
CLEARS_TRACES = LEAKY.replace(
    "    reply.task_done()\n", "    reply.task_done()\n    __import__('tracemalloc').clear_traces()\n"
)
HIDDEN_TASK = LEAKY.replace(
    "    child = asyncio.create_task(run_query())\n",
    "    child = asyncio.Task(run_query())\n    asyncio.tasks._unregister_task(child)\n",
)


def test_an_answer_that_clears_tracemalloc_is_caught():
    assert CLEARS_TRACES != LEAKY
    result = run_isolated(CLEARS_TRACES, scenario="forgotten_cancel", function="handle_request")
    assert result.reason is Reason.TAMPERED and "cleared tracemalloc" in result.error


def test_a_task_made_outside_the_factory_and_unregistered_is_still_counted():
    assert HIDDEN_TASK != LEAKY
    result = run_isolated(HIDDEN_TASK, scenario="forgotten_cancel", function="handle_request")
    assert result.error is None and result.leftover_tasks == 20
