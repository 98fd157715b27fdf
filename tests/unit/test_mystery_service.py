from __future__ import annotations

import asyncio
import gc
import json
import weakref

import pytest
from answers_05 import (
    ASKS_THE_GRADERS_QUOTE,
    CAREFUL_ONLY_WHEN_GRADED,
    CHEAT_LOCAL_PRICE,
    CONTEXT_MANAGER,
    DIAGNOSIS,
    FAILS_EVERY_CALL,
    FIXED,
    HIDDEN_TABLE,
    LATE_REPLY_KILLS_READER,
    LEAKY,
    MAKES_UP_THE_ERROR,
    NOTES_GAVE_UP_IDS,
    PARKS_ON_THE_BACKEND,
    PRICE_WITHOUT_REPLY,
    READER_ONLY,
    REPLY_OBJECT,
    REPLY_WORKED_OUT,
    RESOLVES_BUT_KEEPS_ENTRY,
    REUSES_IDS,
    SENDS_TWICE,
    STUB,
    SWALLOWS_CANCELLATION,
    TABLE_IN_A_DEFAULT,
    TIMES_OUT,
    WAITS_IN_A_COROUTINE,
    WAITS_WITH_WAIT,
)
from outcomes import checks_ran

from leaklab import run_isolated
from leaklab.grading.results import Reason
from leaklab.scenarios import mystery_service
from leaklab.scenarios.mystery_service import (
    CATALOG,
    Backend,
    MysteryService,
    Pending,
    Request,
    Response,
    RunningService,
    _leak_line_in_source,
    _where_the_leak_waits,
    check_diagnosis,
    plan,
    send_traffic,
)

PROPERTIES = ("backend_asked", "responses_right", "table_emptied")
HIDDEN = {"requests": 300, "unknown_every": 5, "seed": 11, "latency_ms": 2.0}  # the notebook's hidden tests
LIMIT = 1024  # bytes retained per request, as the notebook's test says


def run(source: str, **options):
    return run_isolated(source, scenario="mystery_service", function="RpcClient", **options)


def test_the_leaky_service_leaves_every_failed_price_call_waiting_and_answers_the_rest():
    async def main():
        service = await MysteryService().start()
        traffic = await send_traffic(service, 100)
        waiting = dict(service.client.pending)
        await service.stop()
        return traffic, waiting

    traffic, waiting = asyncio.run(main())
    stuck = traffic.unanswered
    assert stuck and all(r.route == "/price" and r.arg not in CATALOG for r in stuck)
    assert len(waiting) == len(stuck)
    assert all(len(entry.frame) == mystery_service.PAYLOAD_BYTES for entry in waiting.values())
    assert traffic.wrong == [] and len(traffic.answers) == 100 - len(stuck)


def test_the_traffic_is_a_mix_of_every_route_with_some_unknown_skus():
    requests = plan(200)
    assert {r.route for r in requests} == set(mystery_service.MIX)
    assert any(r.route == "/price" and r.arg not in CATALOG for r in requests)
    assert any(r.route == "/stock" and r.arg not in CATALOG for r in requests)
    assert Request(0, "/price", 5).expected(lambda sku: 0) == Response(404, "unknown sku 5")


def test_each_backend_has_its_own_prices_and_can_lose_its_replies():
    async def main():
        first, second = Backend(), Backend()
        if first.price(1000) == second.price(1000):  # one chance in 5000
            second = Backend()
        second.losing = True
        second.send(mystery_service.encode(1, 1000))
        await second.all_replied()  # nothing outstanding: the reply was lost
        return first.price(1000) != second.price(1000), second.replies.qsize(), second.asked[1000]

    assert asyncio.run(main()) == (True, 0, 1)


def test_the_grader_s_backend_tells_its_prices_and_unknown_skus_only_in_its_replies():
    async def main():
        backend = mystery_service._graders_backend()
        for request_id, sku in enumerate(CATALOG):
            backend.send(mystery_service.encode(request_id, sku))
        await backend.all_replied()
        return backend, [backend.replies.get_nowait() for _ in CATALOG]

    backend, replies = asyncio.run(main())
    refused = [r for r in replies if r.error]
    assert len(refused) == 10 and all(r.error == mystery_service._refusal(backend, CATALOG[r.id]) for r in refused)
    assert all(r.error != f"unknown sku {CATALOG[r.id]}" for r in refused)  # only a reply tells its message
    assert all(r.value != backend.price(CATALOG[r.id]) for r in replies if not r.error)
    assert {mystery_service._quote(backend, CATALOG[r.id]) for r in refused} == {None}
    quoted = mystery_service._books[backend].quoted
    assert sum(quoted.values()) == 90 and all((CATALOG[r.id], r.value) in quoted for r in replies if not r.error)


def test_asking_the_grader_s_notes_what_its_backend_refuses_is_tampering():
    """`_quote` and `_refusal` are the grader's truth (`_truth.graders_truth`): the scenario's own code asks
    them (every reply, every judged answer), an answer's call of them ends the run as tampered."""
    result = run(ASKS_THE_GRADERS_QUOTE)
    assert result.reason is Reason.TAMPERED and "mystery_service._quote" in result.error
    assert run(FIXED).error is None


def test_the_grader_s_backend_is_the_course_s_own_to_an_answer_that_looks():
    # An answer that behaves only where a grader's backend is (its class, an attribute of its own) sees none.
    backend, plain = mystery_service._graders_backend(), Backend()
    assert type(backend) is Backend and vars(backend).keys() == vars(plain).keys()
    assert [type(value) for value in vars(backend).values()] == [type(value) for value in vars(plain).values()]


def test_lost_replies_come_late_when_the_grader_delivers_them():
    async def main():
        backend = Backend()
        backend.losing = True
        backend.send(mystery_service.encode(7, 1000))
        backend.send(mystery_service.encode(8, 5))
        backend.losing = False
        lost = backend.replies.qsize()
        mystery_service._deliver_lost(backend)
        return lost, [backend.replies.get_nowait() for _ in range(backend.replies.qsize())]

    lost, replies = asyncio.run(main())
    assert lost == 0 and [(r.id, r.error) for r in replies] == [(7, None), (8, "unknown sku 5")]


def test_the_futures_a_client_keeps_are_found_wherever_it_keeps_them():
    # GIVEN futures that callers who hung up awaited, kept in a default argument, a module's global, a
    # function's attribute, or by nothing but their cancelled tasks' tracebacks (the grader's task factory
    # holds every task), WHEN the burst is over, THEN only those something else still holds are kept.
    elsewhere: dict = {}

    def keeper(table={}):  # noqa: B006
        return table

    async def caller(future, where):
        if where == "default":
            keeper()[1] = future
        elif where == "global":
            elsewhere[2] = future
        elif where == "attribute":
            keeper.kept = future
        await future

    async def main():
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(4)]
        tasks = [
            asyncio.create_task(caller(f, w))
            for f, w in zip(futures, ("default", "global", "attribute", ""), strict=True)
        ]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return tasks, [weakref.ref(f) for f in futures]

    tasks, refs = asyncio.run(main())
    assert mystery_service._futures_kept(refs) == 3  # the 4th is held by nothing but its task
    keeper().clear()
    elsewhere.clear()
    del keeper.kept
    assert mystery_service._futures_kept(refs) == 0 and all(t.cancelled() for t in tasks)


def test_the_grader_s_truth_is_not_a_public_shortcut_for_the_diagnosis():
    assert not hasattr(mystery_service, "where_the_leak_waits")
    assert not hasattr(mystery_service, "leak_line_in_source")
    assert "_where_the_leak_waits" not in mystery_service.__all__


def test_the_measured_truth_is_the_line_where_call_awaits_its_future():
    assert _where_the_leak_waits() == ("call", _leak_line_in_source())


def test_the_visible_diagnosis_check_passes_the_truth_and_never_prints_it():
    function, line = _where_the_leak_waits()
    check_diagnosis(function, line)
    check_diagnosis(f"RpcClient.{function}", line)
    wrong = [("read_replies", line), ("price", line), (function, line + 1), (function, str(line)), (1, line)]
    for named, at in wrong:
        with pytest.raises(AssertionError) as failed:
            check_diagnosis(named, at)
        said = str(failed.value)
        assert str(line) not in said.replace(str(at), "") and (named == function or f"`{function}`" not in said)


def client_class(source: str) -> type:
    """The RpcClient an answer cell defines, with the names the grader gives it."""
    names = {"asyncio": asyncio, **{name: getattr(mystery_service, name) for name in mystery_service.ANSWER_NAMES}}
    exec(source, names)
    return names["RpcClient"]


@pytest.mark.parametrize(
    ("source", "entries_left"),
    [(LEAKY, 10 + 4), (READER_ONLY, 4), (FIXED, 0)],  # 10 stuck on an error reply; 4 callers gave up
    ids=["leaky", "reader_only", "fixed"],
)
def test_the_notebook_s_traffic_has_callers_who_give_up_both_ways(source, entries_left):
    async def main():
        with RunningService(client_class(source)) as service:
            traffic = await service.send(100, hang_ups=4)
            return traffic, len(service.service.client.pending)

    traffic, left = asyncio.run(main())
    assert sorted(traffic.hung_up) == ["hung up", "hung up", "timed out", "timed out"]
    assert left == entries_left


def test_an_error_reply_leaves_no_cycle_that_holds_a_frame_until_the_collector_runs():
    async def main():
        with RunningService(client_class(FIXED)) as service:
            traffic = await service.send(100)
        return traffic

    gc.collect()
    gc.disable()
    try:
        traffic = asyncio.run(main())
        assert traffic.wrong == [] and not traffic.unanswered
        held = [o for o in gc.get_objects() if isinstance(o, Pending)]
    finally:
        gc.enable()
    assert held == []  # freed by reference counting as each call ended, not by a later collection


def test_the_lesson_s_diagnosis_is_the_measured_truth(root):
    source = json.loads((root / "notebooks" / "05_mystery_service.ipynb").read_text())
    grade_id = "05_mystery_service_diagnosis"
    cell = next(c for c in source["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)
    names: dict = {}
    exec("".join(cell["source"]), names)  # the markers are comments
    assert (names["LEAK_FUNCTION"], names["LEAK_LINE"]) == _where_the_leak_waits()
    names = {}
    exec(DIAGNOSIS, names)
    assert (names["LEAK_FUNCTION"], names["LEAK_LINE"]) == _where_the_leak_waits()


def test_the_running_service_is_a_thread_that_stops_with_its_stuck_calls():
    async def main():
        with RunningService() as service:
            traffic = await service.send(60)
            assert traffic.unanswered and service.service.client.pending
        return service

    service = asyncio.run(main())
    assert service.loop.is_closed()


def test_leaky_rounds_shows_the_leak():
    async def main():
        lines = [line async for line in mystery_service.leaky_rounds(3)]
        stuck = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return lines, stuck

    lines, stuck = asyncio.run(main())  # asyncio.run cancels what is left when it ends
    assert len(lines) == 3 and all("still waiting" in line for line in lines)
    assert len(stuck) > 3


@pytest.mark.parametrize("options", [{}, HIDDEN], ids=["visible", "hidden"])
@pytest.mark.parametrize(
    ("source", "failing", "leaves_tasks", "holds_memory"),
    [
        (FIXED, set(), False, False),
        (REPLY_OBJECT, set(), False, False),
        (CONTEXT_MANAGER, set(), False, False),
        (WAITS_WITH_WAIT, set(), False, False),
        (READER_ONLY, {"table_emptied"}, False, True),  # a caller that gave up leaves its entry
        (TIMES_OUT, {"responses_right", "table_emptied"}, False, True),
        (HIDDEN_TABLE, {"table_emptied"}, False, False),  # its futures are kept, out of `pending`
        (CHEAT_LOCAL_PRICE, {"responses_right"}, False, False),  # made-up prices: not this backend's
        (PRICE_WITHOUT_REPLY, {"responses_right"}, False, False),  # `price()` is not what the replies say
        (STUB, {"backend_asked", "responses_right"}, False, False),  # it keeps nothing: its table stays empty
        (MAKES_UP_THE_ERROR, {"responses_right"}, False, False),  # its errors are not the backend's
        (NOTES_GAVE_UP_IDS, set(), False, False),
        (REPLY_WORKED_OUT, {"responses_right"}, False, False),  # each reply's price is its own
        (PARKS_ON_THE_BACKEND, {"table_emptied"}, False, False),  # futures kept on the client's backend
        (SWALLOWS_CANCELLATION, {"responses_right"}, False, False),  # a caller who hung up gets 0.00
        (TABLE_IN_A_DEFAULT, {"table_emptied"}, False, False),  # its futures kept in a default argument
    ],
    ids=[
        "fixed",
        "reply_object",
        "context_manager",
        "waits_with_wait",
        "reader_only",
        "times_out",
        "hidden_table",
        "cheat_local_price",
        "price_without_reply",
        "stub",
        "makes_up_the_error",
        "notes_gave_up_ids",
        "reply_worked_out",
        "parks_on_the_backend",
        "swallows_cancellation",
        "table_in_a_default",
    ],
)
def test_each_answer_fails_exactly_what_it_breaks(source, failing, leaves_tasks, holds_memory, options):
    result = run(source, **options)
    assert result.error is None
    assert result.outcome["answered"] == result.outcome["requests"]
    assert {name for name in PROPERTIES if result.outcome[name][0] < result.outcome[name][1]} == failing
    checks_ran(result)
    assert bool(result.leftover_tasks) == leaves_tasks
    assert (result.retained_bytes_per_request >= LIMIT) == holds_memory
    # Wide margins: a leak holds 64 KiB per stuck call, several KiB per request; a fix a few hundred bytes.
    held = result.retained_bytes_per_request
    assert held > 3 * LIMIT if holds_memory else held < LIMIT / 3


@pytest.mark.parametrize("options", [{}, HIDDEN], ids=["visible", "hidden"])
@pytest.mark.parametrize(
    "source",
    [LATE_REPLY_KILLS_READER, RESOLVES_BUT_KEEPS_ENTRY, FAILS_EVERY_CALL],
    ids=["late_reply_kills_reader", "resolves_but_keeps_entry", "fails_every_call"],
)
def test_a_reader_that_a_late_reply_kills_leaves_the_traffic_after_it_unanswered(source, options):
    # Each resolves a reply for a caller who has gone without looking (KeyError, InvalidStateError).
    result = run(source, **options)
    assert result.error is None
    requests = options.get("requests", 200)
    # The callers cut off while the late replies come: none answered; the warm-up's (20 requests: 2) too.
    meanwhile = max(2, requests // 10) + 2
    assert result.outcome["answered"] == result.outcome["requests"] - result.leftover_tasks - meanwhile
    assert 0 < result.leftover_tasks < requests
    with pytest.raises(AssertionError, match="never got an answer"):
        result.require("responses_right")


@pytest.mark.parametrize("options", [{}, HIDDEN], ids=["visible", "hidden"])
def test_a_client_that_reuses_ids_hands_a_late_reply_to_a_new_call(options):
    result = run(REUSES_IDS, **options)
    assert result.error is None
    right, answered = result.outcome["responses_right"]
    assert right < answered and any(p.startswith("responses right: /price") for p in result.outcome["problems"])


@pytest.mark.parametrize("options", [{}, HIDDEN], ids=["visible", "hidden"])
def test_a_client_that_sends_each_frame_twice_asks_the_backend_too_often(options):
    result = run(SENDS_TWICE, **options)
    assert result.error is None
    asked, requests = result.outcome["backend_asked"]
    assert asked < requests
    with pytest.raises(AssertionError, match=r"asked \d+ times for"):
        result.require("backend_asked")


@pytest.mark.parametrize("options", [{}, HIDDEN], ids=["visible", "hidden"])
def test_the_leaky_client_leaves_calls_unanswered_and_tasks_waiting(options):
    result = run(LEAKY, **options)
    assert result.error is None
    assert 0 < result.outcome["requests"] - result.outcome["answered"] < result.leftover_tasks
    assert "call" in result.leak_report
    with pytest.raises(AssertionError, match="never got an answer"):
        result.require("backend_asked")


@pytest.mark.parametrize("options", [{}, HIDDEN], ids=["visible", "hidden"])
def test_a_client_careful_only_with_a_backend_not_the_course_s_is_graded_as_the_leak_it_is(options):
    result = run(CAREFUL_ONLY_WHEN_GRADED, **options)
    assert result.error is None and result.leftover_tasks > 0
    with pytest.raises(AssertionError, match="never got an answer"):
        result.require("backend_asked")


@pytest.mark.parametrize("options", [{}, HIDDEN], ids=["visible", "hidden"])
def test_a_caller_who_hung_up_must_end_cancelled_with_no_answer(options):
    result = run(SWALLOWS_CANCELLATION, **options)
    with pytest.raises(AssertionError, match=r"(?s)responses right: .*hung up .* got an answer .* '0.00'"):
        result.require("responses_right")


@pytest.mark.parametrize("options", [{}, HIDDEN], ids=["visible", "hidden"])
def test_a_call_that_waits_in_a_task_of_its_own_keeps_nothing_once_its_caller_hung_up(options):
    # Each cancelled task keeps its CancelledError, whose traceback holds the frames it ran in (the entry,
    # its future): the grader's task factory holds the tasks, not the client, so nothing counts as kept.
    result = run(WAITS_IN_A_COROUTINE, **options)
    assert result.error is None and not result.leftover_tasks
    assert {name for name in PROPERTIES if result.outcome[name][0] < result.outcome[name][1]} == set()
    assert result.retained_bytes_per_request < LIMIT  # a task and a timer per call: more than FIXED, far under
