from __future__ import annotations

import asyncio

from leaklab import Recorder
from leaklab.scenarios.forgotten_cancel import PAYLOAD_BYTES, background_tasks, leaky_handle_request, serve_burst


async def fixed_handle_request(request):
    """A reference fix: the child is cancelled when the handler is done."""
    from leaklab.scenarios.forgotten_cancel import slow_query

    child = asyncio.create_task(slow_query(request))
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            return await asyncio.shield(child)
    finally:
        child.cancel()


async def settled(limit_s: float = 10.0) -> None:
    """Until every query has ended or is stuck for good: no task but this one is ready to run or sleeping
    towards its end. A wait on the state, not on the clock: a loaded machine runs the queries late."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and t not in background_tasks]
        if not others:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the last query's result, handed over, is dropped by its caller


async def record(handler, label):
    async with Recorder(label) as recorder:
        burst = await serve_burst(handler, requests=40, interval_ms=0.0, work_ms=30.0, deadline_ms=2.0)
        await settled()
    return recorder.recording, burst


def test_recorder_sees_the_leak_in_leaky_code():
    async def main():
        recording, burst = await record(leaky_handle_request, "leaky")
        stuck = list(background_tasks)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        return recording, burst

    recording, burst = asyncio.run(main())
    gave_up = burst.count("cancel") + burst.count("deadline")
    assert gave_up == 20
    assert recording.leftover_tasks == gave_up
    assert max(recording.tasks) >= gave_up and recording.tasks[-1] == gave_up
    assert recording.heap_growth_bytes >= gave_up * PAYLOAD_BYTES
    assert "run_query" in recording.leftover_report and "20 @ task" in recording.leftover_report


def test_recorder_sees_no_leak_in_a_fix():
    recording, burst = asyncio.run(record(fixed_handle_request, "fixed"))
    assert burst.problems == []
    assert recording.leftover_tasks == 0 and recording.tasks[-1] == 0
    assert max(recording.tasks) > 0  # it did see the tasks while they ran
    assert recording.heap_growth_bytes < 5 * PAYLOAD_BYTES


def test_memory_comes_from_memray_snapshots_on_the_same_time_axis():
    recording, _ = asyncio.run(record(fixed_handle_request, "axis"))
    assert recording.capture.exists() and recording.capture.suffix == ".bin"
    assert len(recording.heap_bytes) == len(recording.rss_bytes) == len(recording.memory_times_ms) >= 2
    assert all(rss > 0 for rss in recording.rss_bytes)
    assert recording.times_ms == sorted(recording.times_ms)
    assert -50 < recording.memory_times_ms[0] < recording.times_ms[-1] + 50


def test_memray_names_the_line_holding_the_leaked_memory_and_draws_its_flame_graph(tmp_path):
    from leaklab.scenarios import skipped_stop

    with Recorder("leaky workers") as recorder:
        dependency = skipped_stop.restart_while_down(skipped_stop.LeakyWorker, cycles=3)
    dependency.recover()  # the leak is recorded; the workers' retry now succeeds and they see their stop
    recording = recorder.recording
    top = recording.held_by(top=1).splitlines()[1]
    held = 3 * skipped_stop.BUFFER_BYTES / 1024
    assert f"{held:.1f} KiB in      3 blocks  _run  leaklab/scenarios/skipped_stop.py:" in top
    page = recording.flamegraph(tmp_path / "leaks.html")
    assert page.stat().st_size > 100_000 and "<html" in page.read_text()[:2000].lower()
