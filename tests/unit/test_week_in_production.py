from __future__ import annotations

import asyncio

import pytest
from answers_08 import (
    ALT_IDIOMS,
    BATCH_LOOKS_ONCE,
    BATCH_NO_JOIN,
    CACHES_REPORTS,
    CANCELS_ONLY_ON_TIMEOUT,
    CHEAT_DEADLINE_TELLS,
    CLOSES_ONLY_WHEN_ANSWERED,
    CLOSES_UNLESS_CANCELLED,
    DEFAULT_POOL,
    DIAGNOSIS,
    DIAGNOSIS_COMPUTED,
    DIAGNOSIS_FROM_THE_GRADER,
    DIAGNOSIS_PARSED_FROM_THE_SOURCE,
    DOUBLING_BACKOFF,
    DRAINS_THEN_ENDS,
    DROPS_EVENT_ON_STOP,
    DROPS_WORK,
    FIXED,
    FIXED_TIMEOUTS,
    FLUSHES_IN_STOP,
    GET_NOWAIT_FLUSHER,
    GIVES_UP_AT_ONCE,
    HIDES_REPORT_TASKS,
    JOINS_BUT_DEAF,
    LAUNCHER_BATCH,
    LEAKY,
    LOSES_EVENT_TAKEN_AT_STOP,
    MADE_UP_LOOKUP,
    NO_BACKOFF,
    OTHER_FIX,
    POLLS_UNTIL_ENDED,
    PUTS_BACK_TAKEN_AFTER_STOP,
    PUTS_BACK_THEN_WAITS,
    RAW_FLUSHER,
    RAW_FLUSHER_WAITED,
    RAW_THREADS,
    RETURNS_WITH_TAKEN_EVENT,
    SERIAL_BATCH,
    SHIELDED_CHILD,
    SHORT_BACKOFF,
    SIMPLE_QUEUES_BATCH,
    STOP_LOOKS_ONCE,
    STOP_NO_JOIN,
    STUB,
    TASKS_ONLY,
    THREAD_PER_JOB,
    THREE_OF_FOUR,
    TO_THREAD_NO_SOCKET_TIMEOUT,
    TO_THREAD_SOCKET,
    WAKES_THE_FLUSHER,
)
from outcomes import checks_ran

from leaklab import Recorder, run_isolated
from leaklab.grading import cells
from leaklab.grading.own_run import verify
from leaklab.grading.results import Reason
from leaklab.scenarios import week_in_production as scenario
from leaklab.scenarios.week_in_production import DailyGauge, DependencyError, Sink, handle, heap_by_day, replay_week

SOURCES = ("reports", "lookups", "batches", "events")
PROPERTIES = (*(f"{s}_{p}" for s in SOURCES for p in ("leave_nothing", "answer_right")), "week_flat")
HIDDEN_WEEK = {
    "seed": 7,
    "days": 9,
    "mix": {"report": 4, "lookup": 5, "batch": 1, "events": 4, "status": 1},
    "lookup_deadline_ms": 1200.0,
    "give_up_ms": 40.0,
}


def run(source: str, **options):
    return run_isolated(source, scenario="week_in_production", function="Service", **options)


def failing(result) -> set[str]:
    return {name for name in PROPERTIES if result.outcome[name][0] < result.outcome[name][1]}


def answer_class(source: str) -> type:
    """The answer cell's class, defined with the names the grader gives it."""
    names = {"asyncio": asyncio, **{name: getattr(scenario, name) for name in scenario.__all__}}
    exec(source, names)
    return names["Service"]


def test_handle_squares_and_is_counted():
    before = scenario._handled[0]
    assert handle(7) == 49
    assert scenario._handled[0] == before + 1


def test_the_sink_counts_what_it_delivered_and_fails_while_down():
    sink = Sink()
    sink.call(3)
    sink.go_down()
    with pytest.raises(DependencyError):
        sink.call(4)
    assert sink.delivered == {3: 1}


def test_the_sink_measures_the_least_time_between_two_refused_calls_of_one_run():
    sink = Sink()
    sink.go_down()
    for _call in range(2):
        with pytest.raises(DependencyError):
            sink.call(4)
    assert sink.refused == 2 and sink.closest_retry < 0.01
    closest = sink.closest_retry
    sink.new_run()  # a fresh flusher may try at once what its predecessor put back: not a retry too soon
    with pytest.raises(DependencyError):
        sink.call(4)
    assert sink.refused == 1 and sink.closest_retry == closest


def test_the_gauge_logs_a_line_a_day_and_alerts_over_its_threshold(capsys):
    gauge = DailyGauge(threshold=10)
    gauge.sample(1, 3, 4)
    gauge.sample(3, 6, 5)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Mon 23:59 gauge live_tasks=3 live_threads=4",
        "Wed 23:59 gauge live_tasks=6 live_threads=5  ALERT: 11 > 10",
    ]
    assert gauge.alerts == [3] and gauge.readings == [(3, 4), (6, 5)]


def test_a_fixed_service_serves_a_short_week_right_and_flat_in_this_process():
    # GIVEN the key-value service and the fixed answer, WHEN a recorded week of three days is replayed,
    # THEN every request is right, the gauge stays flat and quiet, and memray has a heap for every day.
    service_class = answer_class(FIXED)
    address = scenario.key_value_service()

    async def main():
        async with Recorder("fixed, unit test") as recorder:
            # Margins as wide as a loaded machine needs, waited out only until the service is done: a lookup's
            # deadline far above a round trip, and a day that ends once its lookups that get no answer have.
            week = await replay_week(
                service_class,
                address,
                days=3,
                gauge=DailyGauge(log=False),
                patience_ms=2000,
                lookup_deadline_ms=1000,
                settle_ms=2000,
            )
        return week, recorder.recording

    week, recording = asyncio.run(main())
    assert week.problems == [] and week.lifecycle_problems == []
    assert week.gauge.alerts == [] and {t for t, _ in week.gauge.readings} == {0}
    assert recording.leftover_tasks == 0 and recording.leftover_threads == 0
    heaps = heap_by_day(recording, week)
    assert len(heaps) == 4 and heaps[0] >= scenario.WORKING_SET_BYTES  # the service's own working set, at rest
    assert max(heaps) < 3 * heaps[0]


@pytest.mark.parametrize(
    ("source", "right"),
    [
        (FIXED, True),  # delivers the event in hand
        (ALT_IDIOMS, True),  # puts it back
        (WAKES_THE_FLUSHER, True),
        (LOSES_EVENT_TAKEN_AT_STOP, False),
        (RETURNS_WITH_TAKEN_EVENT, False),
    ],
    ids=["delivers", "puts_back", "blocking_get", "loses_it", "returns_with_it"],
)
def test_at_each_restart_while_the_sink_is_up_the_flusher_has_an_event_in_hand(source, right):
    # GIVEN a service restarted after every round, the sink up on day 1 and down on day 2,
    # WHEN its events are replayed with the last of each round held in the flusher's get() until stop() waits,
    # THEN each of day 1's three stop()s finds that event in the flusher's hand, and it must be delivered or put
    # back: an answer that loses it is told which events, however fast the machine.
    address = scenario.key_value_service()
    settings = {"days": 2, "rounds": 3, "mix": {"events": 3}, "outage_day": 2, "patience_ms": 2000}
    week = asyncio.run(
        replay_week(answer_class(source), address, gauge=DailyGauge(log=False), hold_taken=True, **settings)
    )
    assert len(week.taken_at_stop) == 3 and week.stop_problems == []
    if right:
        assert week.lifecycle_problems == []
    else:
        assert week.lifecycle_problems[0].startswith("3 events the flusher took from self.events as stop() was called")
        assert ", ".join(map(str, week.taken_at_stop)) in week.lifecycle_problems[0]


def test_the_leaky_service_leaves_every_source_behind():
    result = run(LEAKY)
    assert result.error is None
    # (its flushers hold the events they took: neither delivered nor back on self.events after stop())
    expected = {*(f"{s}_leave_nothing" for s in SOURCES), "lookups_answer_right", "events_answer_right", "week_flat"}
    assert failing(result) == expected
    assert result.leftover_tasks > 0 and result.leftover_threads > 0 and result.leftover_files > 0
    for where in ("run_query", "lookup", "worker", "_flush"):  # each source is a group of the dump
        assert where in result.leak_report


@pytest.mark.parametrize(
    ("source", "lost"),
    [
        (FIXED, set()),
        (OTHER_FIX, set()),
        (ALT_IDIOMS, set()),
        (THREE_OF_FOUR, {"events_leave_nothing", "events_answer_right", "week_flat"}),
        (TASKS_ONLY, {"batches_leave_nothing", "events_leave_nothing", "events_answer_right", "week_flat"}),
        (DROPS_WORK, {"lookups_answer_right", "batches_answer_right", "week_flat"}),
        (JOINS_BUT_DEAF, {"events_leave_nothing", "events_answer_right", "week_flat"}),
        (MADE_UP_LOOKUP, {"lookups_answer_right", "week_flat"}),
        (DROPS_EVENT_ON_STOP, {"events_answer_right", "week_flat"}),  # an event lost at a stop()
        (STOP_NO_JOIN, {"events_leave_nothing", "week_flat"}),  # stop() returned before the flusher ended
        (BATCH_NO_JOIN, {"batches_leave_nothing", "week_flat"}),  # batch() returned before its workers ended
        (STOP_LOOKS_ONCE, {"events_leave_nothing", "week_flat"}),  # one is_alive() is not a wait
        (BATCH_LOOKS_ONCE, {"batches_leave_nothing", "week_flat"}),
        (POLLS_UNTIL_ENDED, set()),  # is_alive() until it says False is one
        (FIXED_TIMEOUTS, {"lookups_answer_right", "week_flat"}),  # TimeoutError before the deadline
        (CHEAT_DEADLINE_TELLS, {"lookups_answer_right", "week_flat"}),  # answers never read from the service
        (CLOSES_ONLY_WHEN_ANSWERED, {"lookups_leave_nothing", "week_flat"}),  # a socket per lookup that timed out
        (CLOSES_UNLESS_CANCELLED, {"lookups_leave_nothing", "week_flat"}),  # ... or that its client cancelled
        (CANCELS_ONLY_ON_TIMEOUT, {"reports_leave_nothing", "week_flat"}),  # a child left when the client cancels
        (HIDES_REPORT_TASKS, {"reports_leave_nothing", "week_flat"}),  # out of asyncio's registry, still pending
        (LAUNCHER_BATCH, {"batches_leave_nothing", "week_flat"}),  # workers a launcher started outlive batch()
        (SHIELDED_CHILD, set()),  # a client's cancel leaves the child to end with its query
        (SERIAL_BATCH, set()),  # no thread at all
        (SIMPLE_QUEUES_BATCH, set()),  # batch() waits in C, where the hold on its jobs cannot see: held to the bound
        (THREAD_PER_JOB, {"batches_leave_nothing", "week_flat"}),  # a batch's jobs on up to eleven threads at once
        (DEFAULT_POOL, {"batches_leave_nothing", "week_flat"}),  # on min(32, cores + 4) threads
        (TO_THREAD_SOCKET, set()),  # the default executor's idle workers are not leftovers
        (TO_THREAD_NO_SOCKET_TIMEOUT, {"lookups_leave_nothing", "week_flat"}),  # busy ones are
        (PUTS_BACK_THEN_WAITS, set()),  # every call to the down sink a back-off after the last
        (DOUBLING_BACKOFF, set()),  # longer back-offs than self.backoff_s are fine
        (GIVES_UP_AT_ONCE, {"events_answer_right"}),  # nothing delivered after the sink comes back, until a restart
        (NO_BACKOFF, {"events_answer_right", "week_flat"}),  # the down sink called again at once
        (SHORT_BACKOFF, {"events_answer_right", "week_flat"}),  # ... a millisecond later
        (FLUSHES_IN_STOP, {"events_answer_right", "week_flat"}),  # no flusher: events go out at stop() only
        (LOSES_EVENT_TAKEN_AT_STOP, {"events_answer_right", "week_flat"}),  # the event in hand as stop() comes
        (RETURNS_WITH_TAKEN_EVENT, {"events_answer_right", "week_flat"}),  # ... dropped another way
        (PUTS_BACK_TAKEN_AFTER_STOP, set()),  # ... put back
        (WAKES_THE_FLUSHER, set()),  # a blocking get(), woken by stop()'s own marker
        (GET_NOWAIT_FLUSHER, set()),
        (DRAINS_THEN_ENDS, set()),  # ends once stopped and self.events is empty
        (CACHES_REPORTS, set()),  # (loses the flat week by the memory it holds: see below)
        (RAW_FLUSHER, {"events_leave_nothing", "week_flat"}),  # a `_thread` flusher stop() did not wait for
        (RAW_THREADS, {"events_leave_nothing", "week_flat"}),  # ... and `_thread` batch workers
        (RAW_FLUSHER_WAITED, set()),  # a `_thread` flusher stop() waited for: its code had ended
        (STUB, {f"{s}_answer_right" for s in SOURCES} | {"week_flat"}),
    ],
    ids=[
        "fixed",
        "other_fix",
        "alt_idioms",
        "three_of_four",
        "tasks_only",
        "drops_work",
        "joins_but_deaf",
        "made_up",
        "drops_event_on_stop",
        "stop_no_join",
        "batch_no_join",
        "stop_looks_once",
        "batch_looks_once",
        "polls_until_ended",
        "fixed_timeouts",
        "cheat_deadline_tells",
        "closes_only_when_answered",
        "closes_unless_cancelled",
        "cancels_only_on_timeout",
        "hides_report_tasks",
        "launcher_batch",
        "shielded_child",
        "serial_batch",
        "simple_queues_batch",
        "thread_per_job",
        "default_pool",
        "to_thread_socket",
        "to_thread_no_socket_timeout",
        "puts_back_then_waits",
        "doubling_backoff",
        "gives_up_at_once",
        "no_backoff",
        "short_backoff",
        "flushes_in_stop",
        "loses_event_taken_at_stop",
        "returns_with_taken_event",
        "puts_back_taken_after_stop",
        "wakes_the_flusher",
        "get_nowait_flusher",
        "drains_then_ends",
        "caches_reports",
        "raw_flusher",
        "raw_threads",
        "raw_flusher_waited",
        "stub",
    ],
)
def test_each_answer_fails_exactly_what_it_breaks(source, lost):
    result = run(source)
    assert result.error is None
    assert failing(result) == lost, result.outcome["problems"]
    checks_ran(result)


@pytest.mark.parametrize(
    "source",
    [
        FIXED_TIMEOUTS,
        STOP_NO_JOIN,
        BATCH_NO_JOIN,
        CANCELS_ONLY_ON_TIMEOUT,
        LAUNCHER_BATCH,
        THREAD_PER_JOB,
        DEFAULT_POOL,
    ],
    ids=["timeouts", "stop", "batch", "client_cancels", "launcher", "thread_per_job", "default_pool"],
)
def test_the_hidden_week_catches_what_the_visible_one_does(source):
    # (another seed, mix and deadlines: an answer that ignores the deadline is early against these too)
    assert failing(run(source, **HIDDEN_WEEK)) == failing(run(source))


def test_what_the_service_keeps_on_itself_is_memory_held_per_request():
    # GIVEN a service that keeps every report's Result on itself, and one that keeps nothing per request
    # WHEN each is graded (the week's service is alive until the grader measures what the run holds)
    # THEN the cache counts, as a module-level one does, and the fixed service's bounded state does not
    assert run(CACHES_REPORTS).retained_bytes_per_request > 4096
    assert run(FIXED).retained_bytes_per_request < 4096


def test_a_fixed_service_is_flat_in_the_hidden_week_too():
    result = run(FIXED, **HIDDEN_WEEK)
    assert result.error is None and failing(result) == set()
    assert result.leftover_tasks == result.leftover_threads == result.leftover_files == 0
    assert result.retained_bytes_per_request < 4096


def test_the_key_value_service_signs_the_answers_of_the_graders_keys():
    # GIVEN a service, WHEN a signed key (w...) is asked for, THEN its answer carries a token that only the
    # service and its starter can compute (lesson 03's grader keys, q..., too), while the lessons' own keep
    # their plain answer.
    import socket

    from leaklab.scenarios.hung_call import expected_answer, pick_key

    address = scenario.key_value_service()
    signed, graders = pick_key(address, 5, answered=True, signed=True), pick_key(address, 5, answered=True)
    plain = "user:42"
    for key in (signed, graders, plain):
        with socket.create_connection(address, timeout=10) as connection:
            connection.sendall(f"GET {key}\n".encode())
            assert connection.makefile().readline().strip() == expected_answer(address, key)
    assert expected_answer(address, plain) == f"value of {plain}"
    assert expected_answer(address, signed).startswith(f"value of {signed} #")
    assert expected_answer(address, graders).startswith(f"value of {graders} #")


def test_the_diagnosis_the_lesson_grades_is_what_the_leaky_weeks_dump_and_memray_show():
    # GIVEN the notebook's leaky week (seed 0) replayed under a Recorder in a process of its own (it leaks),
    # WHEN its task dump and memray's leaked allocations are read as the learner reads them,
    # THEN they name the groups and the biggest holder the graded diagnosis expects, all functions of the service.
    import json
    import subprocess
    import sys

    measure = "import json; from leaklab.scenarios import week_in_production as w; "
    measure += "print(json.dumps(w._measure_the_diagnosis()))"
    done = subprocess.run([sys.executable, "-c", measure], capture_output=True, text=True, timeout=120)
    groups, holder = json.loads(done.stdout.strip().splitlines()[-1])
    assert (tuple(groups), holder) == (scenario._DUMP_GROUPS, scenario._HOLDS_MOST)
    assert {*groups, holder} <= scenario._service_functions()


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        (DIAGNOSIS_FROM_THE_GRADER, "week_in_production._DUMP_GROUPS"),  # the grader's names
        (DIAGNOSIS_PARSED_FROM_THE_SOURCE, "week_in_production.py (its text)"),  # its constants, parsed
        (DIAGNOSIS_COMPUTED, ""),  # plain values, computed as Python binds them
        (DIAGNOSIS, ""),
    ],
    ids=["from_the_grader", "parsed_from_the_source", "computed", "plain"],
)
def test_the_graders_own_run_says_a_diagnosis_read_from_its_answer_was_caught(root, source, caught):
    # GIVEN the lesson's diagnosis test alone, and a submission with `source` as its diagnosis,
    # WHEN the grader's own run grades it (the values the cell computes, worked out in a fresh interpreter),
    # THEN a diagnosis read from the grader's answer scores nothing, and says so; a computed one scores.
    import json

    slug = "08_week_in_production"
    test_id = f"{slug}_diagnosis_graded"
    notebook = json.loads((root / "notebooks" / f"{slug}.ipynb").read_text())
    notebook["cells"] = [c for c in notebook["cells"] if not cells.is_test(c) or cells.grade_id(c) == test_id]
    submission = json.loads((root / "exercises" / f"{slug}.ipynb").read_text())
    for cell in submission["cells"]:
        if cells.grade_id(cell) == f"{slug}_diagnosis":
            cell["source"] = source
    result = verify(notebook, submission)[test_id]
    if caught:
        assert result.score == 0 and result.reason is Reason.TAMPERED
        assert (
            result.message.startswith("tampered: the answer read the grader's own answer") and caught in result.message
        )
    else:
        assert result.score == result.max_score > 0, result.message


def test_the_visible_diagnosis_check_passes_the_truth_and_says_what_to_read_again_without_the_answer():
    # GIVEN the true diagnosis, qualified or not, and wrong ones of each kind a learner writes,
    # WHEN the notebook's visible check reads them,
    # THEN the truth passes, each wrong one fails, and no failure names a group the answer did not name.
    truth = list(scenario._DUMP_GROUPS)
    scenario.check_diagnosis(truth, scenario._HOLDS_MOST)
    scenario.check_diagnosis(tuple(f"LeakyService.{name}" for name in truth), f"x.{scenario._HOLDS_MOST}")
    others = [name for name in truth if name != scenario._HOLDS_MOST]
    wrong = [
        (truth[::-1], scenario._HOLDS_MOST),  # not biggest first
        (["batch", "report", "start", "lookup"], scenario._HOLDS_MOST),  # who starts them, not where they wait
        ([*truth[:3], truth[0]], scenario._HOLDS_MOST),  # one named twice
        (truth[:3], scenario._HOLDS_MOST),  # three
        (["wait", "wait", "_flush", "_wait_for_data"], "wait"),  # the standard library's frames
        (truth, "__init__"),  # the working set, held by design
        (truth, others[0]),  # a smaller holder
        (truth, "status"),  # not a group
        ("worker", scenario._HOLDS_MOST),  # not a list
    ]
    for groups, holder in wrong:
        with pytest.raises(AssertionError) as failed:
            scenario.check_diagnosis(groups, holder)
        said = str(failed.value).replace(repr(groups), "").replace(repr(holder), "")
        assert not [name for name in truth if f"`{name}`" in said and name not in groups], said


def test_a_stubbed_week_says_which_calls_still_raise_and_a_fixed_one_sums_up_what_it_left():
    # GIVEN the exercise's stub and the fixed answer, WHEN a day of each is replayed under the week's recorder,
    # THEN the stub's calls that raise are named (the notebook then draws no plot), and the fixed one's summary
    # says it left nothing: no task, no thread, no socket, every request as specified.
    address = scenario.key_value_service()

    async def day(source: str):
        recorder = scenario.week_recorder("unit test")
        async with recorder:
            week = await replay_week(answer_class(source), address, days=1, gauge=DailyGauge(log=False))
        return week, recorder.recording, scenario.week_markers(week, recorder.started_ms)

    week, _, _ = asyncio.run(day(STUB))
    assert scenario.still_stubbed(week) == ["batch()", "lookup()", "report()", "start()", "stop()"]
    week, recording, markers = asyncio.run(day(FIXED))
    assert scenario.still_stubbed(week) == []
    summary = scenario.week_summary(week, recording)
    assert "left alive: 0 tasks, 0 threads, 0 open sockets" in summary and "ended as specified" in summary
    assert "every thread joined, every event accounted for" in summary and "never closed" not in summary
    assert [label for _, label in markers] == ["Mon ends"] and set(recording.series) == {
        "tasks + threads",
        "open sockets",
    }
