from __future__ import annotations

import asyncio
import os
import re
import select
import socket
import struct
import threading
import time
import tracemalloc
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
        assert "_answer  leaklab/_dump.py" in text  # the request's own thread, as pprof shows its own goroutine
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


# The server under hostile or careless clients: real sockets on loopback, short timeouts to keep it fast.


def connect(server: DumpServer, **options: int) -> socket.socket:
    """A client socket to `server`, with socket options (SO_*) set before it connects."""
    sock = socket.socket()
    for name, value in options.items():
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, name), value)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    return sock


def answer(sock: socket.socket) -> str:
    """Everything the server sends until it closes (nothing if it closes at once, or resets)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:  # a refused client whose request arrived after the server closed
        pass
    return b"".join(chunks).decode("iso-8859-1")


def ask(server: DumpServer, request: bytes) -> str:
    """Send one raw request and return the raw answer."""
    with connect(server) as sock:
        sock.sendall(request)
        return answer(sock)


def stop_timed(server: DumpServer) -> float:
    """Seconds `server.stop()` took."""
    began = time.monotonic()
    server.stop()
    return time.monotonic() - began


def test_300_slow_clients_cost_no_thread_and_do_not_hold_up_stop():
    # GIVEN 300 clients that each send half a request line and then nothing
    before = set(threading.enumerate())
    server = serve_dump(port=0, read_timeout_s=0.5)
    files = len(os.listdir("/proc/self/fd"))
    slow = []
    try:
        for _ in range(300):
            slow.append(connect(server))
            slow[-1].sendall(b"GET /debug/ta")
        # THEN the server is still one thread, and holds at most its 64 connections open
        assert set(threading.enumerate()) - before == {server._thread}
        assert len(os.listdir("/proc/self/fd")) - files - len(slow) <= 64 + 1  # + 1: one accepted to be refused
        # AND a normal request is answered at once: 503 while every slot is taken, the dump once the read
        # timeout has closed the slow clients
        statuses = []
        while not statuses or statuses[-1] != 200:
            began = time.monotonic()
            statuses.append(fetch(server.url)[0])
            assert time.monotonic() - began < 1 and len(statuses) < 100
            time.sleep(0.05)
        assert set(statuses) <= {503, 200}
        # AND stop() does not wait for the slow clients that are left
        assert stop_timed(server) < 2
        assert set(threading.enumerate()) == before
        # AND each slow client was told why it was closed (503 over the limit, 408 too slow) or closed at stop()
        told = {answer(sock)[:12] for sock in slow}
        assert told <= {"HTTP/1.0 503", "HTTP/1.0 408", ""} and "HTTP/1.0 503" in told
    finally:
        server.stop()
        for sock in slow:
            sock.close()


def test_a_silent_connection_does_not_hold_up_stop():
    before = set(threading.enumerate())
    server = serve_dump(port=0)  # the default read timeout, 5 s
    with server, connect(server) as silent:  # leaving `with` stops it again: harmless
        assert fetch(server.url)[0] == 200  # so the silent connection has been accepted before it
        assert stop_timed(server) < 2
        assert set(threading.enumerate()) == before
        assert answer(silent) == ""  # closed, without a word: it never asked anything


def test_a_request_sent_a_byte_at_a_time_is_closed_408_after_the_read_timeout():
    with serve_dump(port=0, read_timeout_s=0.5) as server, connect(server) as sock:
        began = time.monotonic()
        for byte in b"GET /debug/tasks HTTP/1.1\r\n" * 100:
            if select.select([sock], [], [], 0.02)[0]:
                break
            sock.send(bytes([byte]))
        assert answer(sock).startswith("HTTP/1.0 408 ")
        assert 0.4 < time.monotonic() - began < 2  # the timeout is for the whole request, not for each byte


def test_over_the_connection_limit_a_client_is_refused_503_at_once():
    with serve_dump(port=0, max_connections=2) as server, connect(server) as one, connect(server) as two:
        began = time.monotonic()
        status, text = fetch(server.url)  # accepted after one and two: the kernel queues connections in order
        assert (status, text) == (503, "too many connections to the task dump; retry\n")
        assert time.monotonic() - began < 1
        one.close()
        two.close()
        for _ in range(100):  # the slots come back as soon as the server sees the two close
            if fetch(server.url)[0] == 200:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the slots of closed connections were never given back")


def test_a_request_head_over_16_kib_is_refused_431_without_being_kept():
    with serve_dump(port=0) as server:
        # GIVEN the red team's request: 99 headers of 64 KiB each, 6.3 MB
        headers = b"".join(b"X-%d: %s\r\n" % (i, b"a" * 65536) for i in range(99))
        huge = b"GET /debug/tasks HTTP/1.1\r\n" + headers + b"\r\n"
        tracemalloc.start()
        try:
            reply = ask(server, huge)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert reply.startswith("HTTP/1.0 431 ") and reply.endswith("request head over 16384 bytes\n")
        assert peak < 1_000_000  # the server read and dropped it: it never held more than the cap and a chunk
        # AND a head just under the cap is served, and a request line that is not one is answered 400
        just_under = b"GET /debug/tasks HTTP/1.1\r\nX-Big: " + b"a" * 16000 + b"\r\n\r\n"
        assert ask(server, just_under).startswith("HTTP/1.0 200 ")
        assert ask(server, b"NOT A REQUEST AT ALL\r\n\r\n").startswith("HTTP/1.0 400 ")
        assert ask(server, b"POST /debug/tasks HTTP/1.1\r\n\r\n").startswith("HTTP/1.0 501 ")


async def hang_up_mid_response(server: DumpServer) -> None:
    """Ask for a large dump from many clients that hang up in every way, with 1000 tasks stuck."""
    full: asyncio.Queue = asyncio.Queue(maxsize=1)
    full.put_nowait(0)
    stuck = [asyncio.create_task(stuck_on_put(full)) for _ in range(1000)]
    await asyncio.sleep(0)
    request = b"GET /debug/tasks?debug=2 HTTP/1.1\r\n\r\n"
    reset = struct.pack("ii", 1, 0)  # SO_LINGER on, for 0 s: close() sends a reset, not a goodbye

    def clients() -> None:
        for _ in range(10):
            with connect(server, SO_RCVBUF=4096) as sock:  # a small window: the answer cannot be sent at once
                sock.sendall(request)
                sock.recv(1000)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
            with connect(server) as sock:  # asks, then resets before the answer
                sock.sendall(request)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
            with connect(server) as sock:  # half a request, then a plain close
                sock.sendall(request[:10])
            with connect(server) as sock:  # asks, then closes without reading
                sock.sendall(request)

    try:
        await asyncio.to_thread(clients)
        status, text = await asyncio.to_thread(fetch, server.url + "?debug=2")
        assert status == 200 and text.startswith("total 10")  # 1000 tasks and some threads
    finally:
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)


def test_clients_that_hang_up_mid_response_print_nothing(capfd):
    with serve_dump(port=0, read_timeout_s=0.5) as server:
        asyncio.run(hang_up_mid_response(server))
    assert capfd.readouterr() == ("", "")


async def fetch_with_the_loop_stuck(url: str) -> tuple[int, str]:
    """Fetch `url` from inside a coroutine without awaiting: the event loop is stuck until it returns."""
    full: asyncio.Queue = asyncio.Queue(maxsize=1)
    full.put_nowait(0)
    stuck = [asyncio.create_task(stuck_on_put(full)) for _ in range(5)]
    await asyncio.sleep(0)
    try:
        return fetch(url)
    finally:
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)


def test_the_dump_answers_while_the_event_loop_is_stuck():
    with serve_dump(port=0) as server:
        status, text = asyncio.run(fetch_with_the_loop_stuck(server.url))
    assert status == 200 and groups_of(text)["stuck_on_put"] == 5
