from __future__ import annotations

import asyncio
import os
import re
import threading
import urllib.error
import urllib.request

import pytest

from leaklab import DumpServer, serve_dump, task_dump
from leaklab._errors import LeaklabError


async def stuck_on_put(queue: asyncio.Queue) -> None:
    await queue.put(1)


def parked(event: threading.Event) -> None:
    event.wait()


async def waiting_in_another_loop(started: threading.Event, event: asyncio.Event) -> None:
    started.set()
    await event.wait()


async def with_stuck(action, *, tasks: int = 7, threads: int = 3, loops: int = 1):
    """Run `action()` in a thread while `tasks` tasks (spread over `loops` loops) and `threads` threads are stuck."""
    release = threading.Event()
    full: asyncio.Queue = asyncio.Queue(maxsize=1)
    full.put_nowait(0)
    stuck = [asyncio.create_task(stuck_on_put(full)) for _ in range(tasks)]
    sleepers = [threading.Thread(target=parked, args=(release,), name="parked") for _ in range(threads)]
    other_loops = []
    for _ in range(loops - 1):  # a second running loop, in a thread of its own, with its own stuck task
        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=loop.run_forever, name="other-loop")
        runner.start()
        event, started = asyncio.Event(), threading.Event()
        waiting = asyncio.run_coroutine_threadsafe(waiting_in_another_loop(started, event), loop)
        started.wait(10)
        other_loops.append((loop, runner, event, waiting))
    for thread in sleepers:
        thread.start()
    await asyncio.sleep(0)
    try:
        return await asyncio.to_thread(action)
    finally:
        release.set()
        for thread in sleepers:
            thread.join()
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        for loop, runner, event, waiting in other_loops:
            loop.call_soon_threadsafe(event.set)
            waiting.result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            runner.join()
            loop.close()


def groups_of(text: str) -> dict[str, int]:
    """Each group's innermost own frame (the test's function) and its count."""
    found = {}
    for block in text.split("\n\n")[1:]:
        count = int(block.split(" @ ", 1)[0])
        own = re.findall(r"#\t(\w+)  \S*test_dump\.py:\d+", block)
        if own:
            found[own[0]] = found.get(own[0], 0) + count
    return found


def test_the_grouped_dump_counts_every_stuck_task_and_thread():
    text = asyncio.run(with_stuck(task_dump))
    assert text.startswith("tasks and threads (1 event loop): total ")
    found = groups_of(text)
    assert found["stuck_on_put"] == 7 and found["parked"] == 3
    first = text.split("\n\n")[1]
    assert first.startswith("7 @ task waiting on") and "put  asyncio/queues.py:" in first  # biggest group first


def test_the_dump_sees_the_tasks_of_every_running_loop():
    text = asyncio.run(with_stuck(task_dump, tasks=2, threads=0, loops=2))
    assert text.startswith("tasks and threads (2 event loops)")
    assert "waiting_in_another_loop  " in text


def test_debug_2_lists_every_task_and_thread_with_its_name_and_stack():
    text = asyncio.run(with_stuck(lambda: task_dump(debug=2), tasks=2, threads=1))
    assert len(re.findall(r"^task 'Task-\d+' \[waiting on [^,]+, loop 0x[0-9a-f]+ running\]:$", text, re.M)) >= 3
    assert len(re.findall(r"^thread 'parked' \[native id \d+\]:$", text, re.M)) == 1
    assert "\tparked  " in text and "\tstuck_on_put  " in text


def test_an_unknown_debug_level_is_refused():
    with pytest.raises(ValueError, match="debug must be 1"):
        task_dump(debug=3)


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_server_answers_over_http_on_loopback_and_stops_cleanly():
    before, files_before = set(threading.enumerate()), len(os.listdir("/proc/self/fd"))
    with serve_dump(port=0) as server:
        assert isinstance(server, DumpServer) and server.host == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.port}/debug/tasks"
        status, text = asyncio.run(with_stuck(lambda: fetch(server.url + "?debug=1"), tasks=4, threads=2))
        assert status == 200 and groups_of(text)["stuck_on_put"] == 4 and groups_of(text)["parked"] == 2
        assert "do_GET  leaklab/_dump.py" in text  # the request's own thread, as pprof shows its own goroutine
        assert fetch(server.url + "?debug=2")[1].startswith("total ")
        assert fetch(server.url + "?debug=banana")[0] == 400
        assert fetch(f"http://127.0.0.1:{server.port}/elsewhere")[0] == 404
        assert "?debug=2" in fetch(f"http://127.0.0.1:{server.port}/debug")[1]
    assert set(threading.enumerate()) == before  # its serving thread and request threads are gone
    assert len(os.listdir("/proc/self/fd")) == files_before  # and its sockets are closed
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=2)
    server.stop()  # a second stop is harmless
    assert "stopped" in repr(server)


def test_a_busy_port_says_what_to_do():
    with serve_dump(port=0) as server, pytest.raises(LeaklabError, match="pass another port"):
        serve_dump(port=server.port)
