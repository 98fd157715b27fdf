"""Scenario 03, the blocking call without a timeout: a dependency that accepts and never answers.

The article's fix for a blocking call (`callWithTimeout`, in its section on timeouts) runs the call in a
goroutine and stops waiting for it after five seconds; the call itself is never told, so when the service
hangs, the caller is free and the goroutine still waits in its read, holding a connection and its buffers.
The Python twin calls a real TCP service on the loopback interface, run in a process of its own, that
answers most requests, holds others open without a word and resets a few. `asyncio.wait_for` around
`asyncio.to_thread` is the article's function exactly (the executor's future is its buffered channel): it
returns on time, the thread keeps waiting in `recv`, and the default executor's few threads are soon all
stuck.

Time is compressed: a millisecond here stands for a second in the article.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread
import contextlib
import contextvars
import gc
import hashlib
import itertools
import json
import os
import re
import secrets
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter

from .._census import alive_threads, task_done
from .._i18n import _
from ._checks import exception_name
from ._truth import graders_truth

# Python's own export list (`import *`); the grader gives an answer cell ANSWER_NAMES, at the end.
__all__ = ["PAYLOAD_BYTES", "Request", "socket"]

PAYLOAD_BYTES = 64 * 1024  # DO NOT CHANGE: the buffer each call holds for its answer


@dataclass(frozen=True)
class Request:
    """One call to the dependency: `key` is what to ask for; the answer must come within `deadline_ms`."""

    key: str
    deadline_ms: float = 100.0

    def line(self) -> bytes:
        """The request as the service reads it."""
        return f"GET {self.key}\n".encode()

    def expected(self) -> str:
        """The service's answer to one of the lesson's own keys, when it answers (to a grader's key it adds a
        token only the service knows: `answer_to`)."""
        return f"value of {self.key}"


# --- the dependency: a TCP service in a process of its own ----------------------------------------


@graders_truth  # which keys hang: the service's and the grader's to know, not the answer's
def never_answered(secret: str, key: str) -> bool:
    """Whether the service holds `key` without a word: the lesson's `stuck-...` keys, and about one in
    three of a grader's keys (`q7.0`), by a secret that only the service and the process that started it
    know (so an answer cannot tell from a key that it will hang)."""
    if key.startswith("stuck"):
        return True
    return (
        re.fullmatch(r"[qw]\d+\.\d+", key) is not None
        and hashlib.sha256(f"{secret}:{key}".encode()).digest()[0] % 3 == 0
    )


@graders_truth
def answer_to(secret: str, key: str) -> str:
    """The service's answer to `key`: `value of <key>`; for a grader's key (`q7.0`, or lesson 08's `w7.0`)
    followed by a token made from the secret, so that only a client that read the reply can return it."""
    if re.fullmatch(r"[qw]\d+\.\d+", key):
        return f"value of {key} #{hashlib.sha256(f'{secret}:answer:{key}'.encode()).hexdigest()[:12]}"
    return f"value of {key}"


def resets_connection(key: str) -> bool:
    """Whether the service resets the connection of `key`: the lesson's `reset-...` keys and a grader's
    `e7.0`. The call then ends in an error (ConnectionResetError), and must leave nothing open either."""
    return key.startswith("reset") or re.fullmatch(r"e\d+\.\d+", key) is not None


_secret = ""  # the service's, in its own process
_answered: set[str] = set()  # the keys it has answered: a grader asks, to tell real answers from made-up ones
_asks: dict[str, int] = {}  # how often each key was asked for: a call that hangs must not be asked again
_ports: dict[str, list[int]] = {}  # the client's ports each key was asked from: which socket was its call's
_asked = threading.Condition()  # notified on each ask: a caller waits for its call's request (`WAIT key`)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for raw in self.rfile:
            line = raw.decode().strip()
            if line == "ANSWERED":
                self.wfile.write((json.dumps(sorted(_answered)) + "\n").encode())
                continue
            if line == "ASKED":
                self.wfile.write((json.dumps(_asks) + "\n").encode())
                continue
            if line == "PORTS":
                self.wfile.write((json.dumps(_ports) + "\n").encode())
                continue
            if line.startswith("WAIT "):  # until the key has been asked for (10 s at most): "1", or "0"
                waited_for = line.removeprefix("WAIT ")
                with _asked:
                    asked = _asked.wait_for(lambda: waited_for in _asks, timeout=10)  # noqa: B023 (called here)
                with contextlib.suppress(OSError):  # the caller stops waiting once its call has ended
                    self.wfile.write(f"{int(asked)}\n".encode())
                continue
            key = line.removeprefix("GET ")
            with _asked:
                _asks[key] = _asks.get(key, 0) + 1
                _asked.notify_all()
            _ports.setdefault(key, []).append(self.client_address[1])
            if resets_connection(key):  # a call that fails: the connection is reset
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()  # before socketserver's shutdown(SHUT_WR), which would say EOF instead
                return
            if never_answered(_secret, key):
                continue  # hold the connection open and say nothing, until the client gives up
            _answered.add(key)
            self.wfile.write(f"{answer_to(_secret, key)}\n".encode())


def _serve() -> None:
    """Serve on a free loopback port, and open a door that never lets anyone in (`_door`); print both
    ports, and end when the process that started us has ended."""
    global _secret
    _secret = sys.stdin.readline().strip()
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer.request_queue_size = 1024  # a burst connects at once: no SYN retries
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    door, _filler = _door()
    print(server.server_address[1], door.getsockname()[1], flush=True)
    parent = os.getppid()
    with contextlib.suppress(KeyboardInterrupt):
        threading.Thread(target=server.serve_forever, daemon=True).start()
        while os.getppid() == parent:
            time.sleep(0.1)


def _door() -> tuple[socket.socket, socket.socket]:
    """A listening socket whose backlog is full, and the connection that fills it (never accepted): the
    kernel drops every further SYN to it (Linux: `ListenOverflows`), so a connect to it never completes,
    however long it waits, on any load. A call sent there hangs in its connect, which its deadline must cover."""
    door = socket.socket()
    door.bind(("127.0.0.1", 0))
    door.listen(0)  # a backlog of 0 holds one connection
    filler = socket.create_connection(door.getsockname(), timeout=10)
    listening = f"0100007F:{door.getsockname()[1]:04X}"  # 127.0.0.1:port as /proc/net/tcp writes it
    until = time.monotonic() + 10
    while time.monotonic() < until:  # until the kernel has queued the filler (its handshake has ended)
        with open("/proc/self/net/tcp") as rows:
            queued = [row.split()[4] for row in rows if row.split()[1:4:2] == [listening, "0A"]]  # LISTEN
        if queued and int(queued[0].partition(":")[2], 16) >= 1:  # rx_queue: the connections it holds
            break
        time.sleep(0.001)
    return door, filler


_services: list[subprocess.Popen] = []  # kept, so that a service outlives the call that started it
_secrets: dict[tuple[str, int], str] = {}  # each service's secret, by its address
_doors: dict[tuple[str, int], tuple[str, int]] = {}  # each service's door that never opens (`_door`)


def start_service() -> tuple[str, int]:
    """Start the service in a process of its own on a free loopback port; it ends when this process does."""
    server = subprocess.Popen(
        [sys.executable, "-m", "leaklab.scenarios.hung_call"], stdout=subprocess.PIPE, stdin=subprocess.PIPE
    )
    assert server.stdout is not None and server.stdin is not None
    secret = secrets.token_hex(8)
    server.stdin.write(f"{secret}\n".encode())  # not on its command line, where any process could read it
    server.stdin.close()
    port, door = map(int, server.stdout.readline().split())
    server.stdout.close()
    _services.append(server)
    _secrets["127.0.0.1", port] = secret
    _doors["127.0.0.1", port] = "127.0.0.1", door
    return "127.0.0.1", port


def door_of(address: tuple[str, int]) -> tuple[str, int]:
    """The address beside the service at `address` that accepts no connection: a connect there never ends."""
    return _doors[address]


def pick_key(address: tuple[str, int], number: int, *, answered: bool, signed: bool = False) -> str:
    """A grader's key (`q7.2`, or with `signed` `w7.2`) that the service at `address` answers (or, with
    `answered=False`, never does)."""
    for attempt in itertools.count():
        key = f"{'w' if signed else 'q'}{number}.{attempt}"
        if never_answered(_secrets[address], key) != answered:
            return key
    raise AssertionError("unreachable")


def expected_answer(address: tuple[str, int], key: str) -> str:
    """What the service at `address` answers to `key` (when it answers)."""
    return answer_to(_secrets[address], key)


def answered_keys(address: tuple[str, int]) -> set[str]:
    """The keys the service has answered so far, as it counts them."""
    return set(_ask_service(address, "ANSWERED"))


def times_asked(address: tuple[str, int]) -> dict[str, int]:
    """How often the service was asked for each key so far."""
    return dict(_ask_service(address, "ASKED"))


def client_ports(address: tuple[str, int]) -> dict[str, list[int]]:
    """The client ports the service saw each key asked from: the local ports of the calls' sockets."""
    return dict(_ask_service(address, "PORTS"))


def _ask_service(address: tuple[str, int], command: str) -> list | dict:
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(f"{command}\n".encode())
        return json.loads(connection.makefile().readline())


@contextlib.contextmanager
def dependency() -> Iterator[tuple[str, int]]:
    """Start the service on the loopback interface; yields its (host, port) and stops it afterwards."""
    address = start_service()
    server = _services.pop()
    try:
        yield address
    finally:
        server.kill()
        server.wait()


# --- the leaky calls ------------------------------------------------------------------------------


async def leaky_fetch(request: Request, address: tuple[str, int]) -> str:
    """Ask the service, and wait for its answer for as long as it takes."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(request.line())
    await writer.drain()
    answer = bytearray(PAYLOAD_BYTES)  # room for the answer, held while we wait
    line = await reader.readline()  # no timeout: a service that never answers keeps us here forever
    answer[: len(line)] = line
    writer.close()
    await writer.wait_closed()
    return line.decode().strip()


def blocking_fetch(request: Request, address: tuple[str, int]) -> str:
    """The same call with a blocking socket, for a thread; no timeout either."""
    with socket.create_connection(address) as connection:
        connection.sendall(request.line())
        answer = bytearray(PAYLOAD_BYTES)
        size = connection.recv_into(answer)  # blocks until the service answers: perhaps never
        return answer[:size].decode().strip()


async def leaky_fetch_in_thread(request: Request, address: tuple[str, int]) -> str:
    """The article's `callWithTimeout`: a timeout around the thread, not on the call. The caller is free on
    time; the thread is not (the executor's future, which takes its result whenever it comes, is the
    buffered channel)."""
    return await asyncio.wait_for(asyncio.to_thread(blocking_fetch, request, address), request.deadline_ms / 1000)


# --- the traffic -----------------------------------------------------------------------------------

Fetch = Callable[[Request, tuple[str, int]], Awaitable[str]]


@dataclass
class Call:
    """How one call ended, as its caller saw it."""

    request: Request
    stuck: bool  # the service never answers this one
    ended_with: str  # "answer", "TimeoutError", another exception's name, or "nothing" (still waiting)
    answer: str
    took_ms: float
    cancelled: bool = False  # its caller cancelled it mid-call, before its deadline
    reset: bool = False  # the service reset the connection: however the call ends, it must leave nothing
    unaccepted: bool = False  # sent to the service's door (`door_of`): its connect never completes
    # For a cancelled call: the local ports of this process's sockets to the service at the moment its task
    # was done (None: it never was), to tell whether its own socket was still open once it had ended.
    ports_open: frozenset[int] | None = None
    # The call's task, kept as a caller that keeps its finished tasks would (the grader keeps every task):
    # a finished task still refers to what it raised, and through its traceback to the frames' locals.
    task: asyncio.Future[str] | None = field(default=None, repr=False, compare=False)
    expected: str = ""  # what the service answers to this call's key (a grader's key: with its token)
    # What the call started (a task, a thread) that still ran long after it had ended (`Started`).
    outlived: list[str] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        """A right answer from the service, or a TimeoutError not before the deadline and not long after it
        (a wide margin)."""
        if self.stuck:
            on_time = self.past_deadline and self.took_ms < self.request.deadline_ms + _MARGIN_MS
            return self.ended_with == "TimeoutError" and on_time
        return self.ended_with == "answer" and self.answer == self.expected

    @property
    def past_deadline(self) -> bool:
        """Whether the call ended after its deadline had passed, counted from when fetch was called (a
        loaded machine only makes it later): a TimeoutError before it gave up too soon."""
        return self.took_ms >= self.request.deadline_ms - _CLOCK_MS

    @property
    def ended_as_told(self) -> bool:
        """A call the service reset raised ConnectionResetError; one its caller cancelled let CancelledError
        through, or had ended before the cancellation reached it (with its answer, or past its deadline)."""
        if self.reset:
            return self.ended_with == "ConnectionResetError"
        if self.ended_with == "TimeoutError":
            return self.past_deadline
        return self.ended_with == "CancelledError" or (
            self.ended_with == "answer" and not self.stuck and self.answer == self.expected
        )

    def closed_when_ended(self, ports: list[int]) -> bool:
        """Whether none of the sockets this call opened (the service saw them from `ports`) was still open
        when its task was done."""
        asked = set(ports)
        return not asked or (self.ports_open is not None and not asked & self.ports_open)


_MARGIN_MS = 1500.0  # how late a timeout may be on a loaded machine and still count as on time
_CLOCK_MS = 1.0  # how early a timer may fire (the clock's resolution, a deadline's rounding): still on time
# The grader's deadlines for the calls that hang, in turn, so that a timeout of the answer's own is early on
# some of them. The planned burst cancels every other call that hangs at half its deadline: the even places
# are for the calls left to reach theirs, the odd ones for the cancelled (not under 100 ms: see `send_calls`).
# One left to reach its deadline has a long one (1.5 s), so that a fixed timeout of the answer's own is
# early by far more than a loaded machine makes a timer late, and a deadline enforced only when short hangs;
# so has one cancelled, so that a loaded machine surely starts it (the service has it) before it is cancelled.
GRADER_DEADLINES_MS = (20.0, 400.0, 400.0, 250.0, 60.0, 100.0, 1500.0, 1500.0)
# The deadlines of the planned burst's calls to the service's door (`door_of`), which never accepts: a fetch
# whose deadline does not cover the connect waits there until its caller gives up.
UNACCEPTED_DEADLINES_MS = (60.0, 400.0)


def plan(
    calls: int,
    *,
    stuck_every: int = 3,
    deadlines_ms: tuple[float, ...] = (100.0,),
    healthy_deadline_ms: float = 2000.0,
    opaque_keys: tuple[str, int] | None = None,
    resets: bool = False,
) -> list[tuple[Request, bool]]:
    """`calls` requests; one in `stuck_every` goes to the part of the service that never answers; with
    `resets`, one in `2 * stuck_every` of the others (the fifth of every six) goes to one that resets it.
    The calls that hang take their deadlines from `deadlines_ms` in turn.

    A call the service answers gets a deadline far beyond its round trip, so that a loaded machine
    cannot turn a right answer into a timeout. The lesson's keys say which is which (`stuck-2`,
    `reset-4`); a grader's (`opaque_keys`: the service's address) do not say which hang.
    """
    planned = []
    for i in range(calls):
        stuck = i % stuck_every == stuck_every - 1
        reset = resets and not stuck and i % (2 * stuck_every) == 2 * stuck_every - 2
        if reset:
            key = f"e{i}.0" if opaque_keys else f"reset-{i}"
        elif opaque_keys:
            key = pick_key(opaque_keys, i, answered=not stuck)
        else:
            key = f"stuck-{i}" if stuck else f"key-{i}"
        deadline_ms = deadlines_ms[i // stuck_every % len(deadlines_ms)] if stuck else healthy_deadline_ms
        planned.append((Request(key, deadline_ms), stuck))
    return planned


# The TCP states (Linux's numbering in /proc/net/tcp) of a connection whose client has not closed its side
# yet: connecting, open, or closed by the service only. Once the client has closed (shutdown or the last
# reference to the socket gone), the kernel moves it on (FIN_WAIT1, ...) or drops it (a reset).
_NOT_CLOSED_BY_CLIENT = {"01", "02", "08"}  # ESTABLISHED, SYN_SENT, CLOSE_WAIT


def ports_open_to(address: tuple[str, int]) -> frozenset[int]:
    """The local ports of the connections to `address`'s port still open at this moment (Linux): this
    process's sockets in /proc/self/fd, and every connection whose client side the kernel still holds open
    (/proc/self/net/tcp and tcp6), whether or not a descriptor still names it: a socket closed by one thread
    while another still waits in `recv` on it has lost its descriptor, but not its connection."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if (link := os.readlink(f"/proc/self/fd/{fd}")).startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in itertools.islice(rows, 1, None):
                local, remote, state, inode = itemgetter(1, 2, 3, 9)(row.split())
                if int(remote.rpartition(":")[2], 16) == address[1] and (
                    inode in inodes or state in _NOT_CLOSED_BY_CLIENT
                ):
                    ports.add(int(local.rpartition(":")[2], 16))
    return frozenset(ports)


def open_sockets() -> int:
    """How many sockets this process has open, as the operating system counts them (Linux)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


class SocketCount:
    """A count of the sockets this process has opened since the count was made, for `Recorder(counts=...)`
    (it reads /proc, not the event loop: it may be called from the recorder's thread)."""

    def __init__(self) -> None:
        self.baseline = open_sockets()

    def __call__(self) -> int:
        return max(0, open_sockets() - self.baseline)  # not below zero: a socket of earlier work may close meanwhile


@dataclass
class Burst:
    """What the lesson's burst of calls did: how each call ended, and what was still open afterwards."""

    calls: list[Call]
    sockets_left: int  # open when every call had ended, their tasks kept (as the grader keeps them)
    sockets_let_go: int  # still open once the tasks were let go, the collector paused: not even finalisers closed them
    sockets_collected: int  # still open once the garbage collector had run too
    # How often the service was asked for each key: a call its caller cancelled before it had connected
    # (on a loaded machine, even at half its deadline) opened nothing that could be left open.
    asked: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        counted = [(_("sockets still open when every call had ended:"), self.sockets_left)]
        if self.sockets_left:
            counted.append((_("sockets still open once the callers let go of the tasks:"), self.sockets_let_go))
            counted.append((_("sockets still open after a garbage collection too:"), self.sockets_collected))
        width = max(len(when) for when, _count in counted)  # the counts in one column
        digits = len(str(max(count for _when, count in counted)))
        lines = [f"{when:<{width}} {count:>{digits}}" for when, count in counted]
        if self.sockets_left:
            lines[1] += " " + _("(garbage collector paused)")
        return "\n".join([describe(self.calls), *lines])


async def burst(fetch: Fetch, calls: int = 60, *, interval_ms: float = 5.0, patience_ms: float = 200.0) -> Burst:
    """The lesson's burst: `calls` calls to a fresh service, one every `interval_ms`, ending every way the
    task names (`plan` with `resets`, `send_calls` with `cancel_early`); then what they left open.

    The garbage collector is paused meanwhile, as the grader pauses it: what closes then closed because
    nothing referred to it any more (reference counting), not because a collection happened to run.
    """
    sockets = SocketCount()
    collecting = gc.isenabled()
    gc.disable()
    try:
        with dependency() as address:
            ended = await send_calls(
                fetch, address, calls, interval_ms=interval_ms, patience_ms=patience_ms, cancel_early=True, resets=True
            )
            if any(call.ended_with == "NotImplementedError" for call in ended):
                raise NotImplementedError(_("the fetch is the exercise's stub: write it in the answer cell"))
            # A call its caller cancelled may still run in a thread until its own deadline: wait that long
            # (and a little, for connections closed a moment ago to finish closing) before counting.
            await asyncio.sleep(max(call.request.deadline_ms for call in ended if call.stuck) / 1000 + 0.03)
            left = sockets()
            for call in ended:
                call.task = None  # the burst's callers let go of their tasks: nothing else refers to them
            await asyncio.sleep(0.02)
            let_go = sockets()
            gc.collect()
            await asyncio.sleep(0.02)
            collected = sockets()
            asked = times_asked(address)  # a connection of its own: after the counts
    finally:
        if collecting:
            gc.enable()
    return Burst(ended, left, let_go, collected, asked)


# The call a fetch runs for, in the context its task runs in: a task it creates copies that context, and a
# thread it starts is started in it, so each is known as that call's (`Started`).
_CALL: contextvars.ContextVar[str] = contextvars.ContextVar("leaklab_hung_call")
_POOL_WORKER = concurrent.futures.thread._worker  # a pool's thread outlives the call that made the pool grow


class Started:
    """The tasks and threads each call's fetch started, by the call's key: what a call started must not
    run on long after the call has ended ("nothing it opened stays open once it has ended (no socket, no
    task, no thread)"), as a watchdog left sleeping until the deadline does. The tasks are seen through the
    loop's task factory, the threads through `threading`'s own `_start_new_thread`, wrapped while a burst
    records (Python 3.11 raises no audit event for a new thread). Held weakly: a task or thread nothing
    runs or refers to any more is not running."""

    def __init__(self) -> None:
        self.by_call: defaultdict[str, weakref.WeakSet] = defaultdict(weakref.WeakSet)

    def note(self, started: object) -> None:
        if (key := _CALL.get(None)) is not None:
            self.by_call[key].add(started)

    @contextlib.contextmanager
    def recording(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """Note what each call starts while the block runs (on `loop`, and in any thread)."""
        factory = loop.get_task_factory()

        def noting(loop: asyncio.AbstractEventLoop, coro: object, **options: object) -> asyncio.Future:
            task = factory(loop, coro, **options) if factory else asyncio.Task(coro, loop=loop, **options)  # type: ignore[arg-type]
            self.note(task)
            return task

        start_new_thread = threading._start_new_thread  # type: ignore[attr-defined]

        def starting(function: Callable, *args: object) -> int:
            thread = getattr(function, "__self__", None)  # `Thread._bootstrap`, bound to the thread
            if isinstance(thread, threading.Thread) and getattr(thread, "_target", None) is not _POOL_WORKER:
                self.note(thread)
            return start_new_thread(function, *args)

        loop.set_task_factory(noting)
        threading._start_new_thread = starting  # type: ignore[attr-defined]
        try:
            yield
        finally:
            threading._start_new_thread = start_new_thread  # type: ignore[attr-defined]
            loop.set_task_factory(factory)

    def running(self, key: str) -> list[str]:
        """What the call `key` started that still runs, as its loop and the operating system say."""
        started = list(self.by_call.get(key, ()))
        tasks = [t for t in started if isinstance(t, asyncio.Future) and not task_done(t)]
        threads = alive_threads(t for t in started if isinstance(t, threading.Thread))
        named = [_("task {name}", name=getattr(task.get_coro(), "__qualname__", "?")) for task in tasks]
        return named + [_("thread {name}", name=thread.name) for thread in threads]

    async def outlived(self, key: str, until: float) -> list[str]:
        """What the call `key`, which has ended, started that still runs at `until` (monotonic): each
        ends at once, or as soon as its loop or the machine lets it, unless it waits for something."""
        while True:  # what runs is asked of threads and the loop's state: nothing to await but time
            running = self.running(key)
            if not running or time.monotonic() >= until:
                return running
            await asyncio.sleep(0.005)


async def _call(
    fetch: Fetch,
    request: Request,
    stuck: bool,
    address: tuple[str, int],
    patience_ms: float,
    cancel_ms: float | None = None,
    recorder: Started | None = None,
) -> Call:
    started = time.monotonic()
    context = contextvars.copy_context()
    context.run(_CALL.set, request.key)
    attempt = context.run(lambda: asyncio.ensure_future(fetch(request, address)))
    if recorder is not None:
        recorder.by_call[request.key].discard(attempt)  # the call's own task
    if cancel_ms is not None:  # the caller goes away before the call's own deadline (at 0: before it starts)
        # What is still open the moment the call has ended: this callback runs before any other of the
        # task's (asyncio.wait's), and after the callbacks its last step scheduled (a transport's close).
        at_end: list[frozenset[int]] = []
        attempt.add_done_callback(lambda _attempt: at_end.append(ports_open_to(address)))
        await asyncio.wait({attempt}, timeout=cancel_ms / 1000)
        if cancel_ms > 0 and not attempt.done():  # mid-call: once the service has the request, if before 90%
            await _until_asked(attempt, request.key, address, started + 0.9 * request.deadline_ms / 1000)
        attempt.cancel()
        await asyncio.wait({attempt}, timeout=patience_ms / 1000)
        took = (time.monotonic() - started) * 1000
        if not attempt.done():
            ended = "nothing"
        elif attempt.cancelled():
            ended = "CancelledError"
        else:  # it ended before the cancellation reached it
            ended = exception_name(attempt.exception()) if attempt.exception() else "answer"
        answer = attempt.result() if ended == "answer" else ""
        return Call(
            request, stuck, ended, answer, took, cancelled=True, ports_open=next(iter(at_end), None), task=attempt
        )
    done, _pending = await asyncio.wait({attempt}, timeout=(request.deadline_ms + patience_ms) / 1000)
    took = (time.monotonic() - started) * 1000
    if not done:  # the caller gives up for it; what the call held stays held
        attempt.cancel()
        return Call(request, stuck, "nothing", "", took, task=attempt)
    try:
        call = Call(request, stuck, "answer", attempt.result(), took, task=attempt)
    except Exception as exc:
        call = Call(request, stuck, exception_name(exc), "", took, task=attempt)
    if recorder is not None and not stuck:
        # A call the service answers (or resets) ends in milliseconds, far before its deadline (over a
        # second): what it started must have ended by 90% of it, where a watchdog still waits for it.
        call.outlived = await recorder.outlived(request.key, started + 0.9 * request.deadline_ms / 1000)
    return call


async def _until_asked(attempt: asyncio.Future[str], key: str, address: tuple[str, int], until: float) -> None:
    """Wait until the service has been asked for `key` (it says so: `WAIT`), `attempt` has ended, or it is
    `until` (before the deadline: a caller that cancels at the deadline races the call's own timeout): a
    caller that cancels mid-call then cancels a call that holds its connection, even where a thread pool the
    burst has filled, or a loaded machine, started the call late."""

    async def asked() -> None:
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(f"WAIT {key}\n".encode())
            await reader.readline()
        finally:
            writer.close()

    waiting = asyncio.ensure_future(asked())
    left = until - time.monotonic()
    await asyncio.wait({attempt, waiting}, timeout=max(0.0, left), return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


async def send_calls(
    fetch: Fetch,
    address: tuple[str, int],
    calls: int = 60,
    *,
    interval_ms: float = 0.0,
    patience_ms: float = _MARGIN_MS,
    cancel_early: bool = False,
    unaccepted_ms: tuple[float, ...] = (),
    rows: list[list] | None = None,
    recorder: Started | None = None,
    **plan_options: float,
) -> list[Call]:
    """Make `calls` calls to the service, one every `interval_ms`; each caller waits for its answer
    until `patience_ms` past the call's deadline, then gives up on it (cancels it); with `cancel_early`,
    some callers cancel a call that hangs long before that; one more call for each of `unaccepted_ms`, with
    that deadline, goes to the service's door, where its connect never completes. Or make the drawn calls
    of `rows` (`traffic`). With a `recorder`, what each answered call started is asked for as it ends."""
    if rows is None:
        # however a call ends: every other call that would hang is cancelled by its caller at half its
        # deadline (with `cancel_early`), so that what it holds must be released on cancellation too (half,
        # not sooner: a burst that connects all at once on a loaded machine may still be connecting then)
        planned = [
            (request, stuck, request.deadline_ms / 2 if cancel_early and stuck and number % 2 else None, interval_ms)
            for number, (request, stuck) in enumerate(plan(calls, **plan_options))
        ]
        targets = [address] * len(planned)
        for turn, deadline_ms in enumerate(unaccepted_ms, start=1):  # spread evenly through the burst
            where = turn * calls // (len(unaccepted_ms) + 1) + turn - 1  # counting the ones inserted before it
            request = Request(pick_key(address, calls + turn, answered=False), deadline_ms)
            planned.insert(where, (request, True, None, interval_ms))
            targets.insert(where, door_of(address))
    else:
        drawn = [_drawn_call(address, number, *row) for number, row in enumerate(rows)]
        planned, targets = [entry for entry, _target in drawn], [target for _entry, target in drawn]
    callers = []
    for (request, stuck, cancel_ms, gap_ms), target in zip(planned, targets, strict=True):
        callers.append(asyncio.ensure_future(_call(fetch, request, stuck, target, patience_ms, cancel_ms, recorder)))
        await asyncio.sleep(gap_ms / 1000)
    calls = list(await asyncio.gather(*callers))
    for call, target in zip(calls, targets, strict=True):
        call.reset = resets_connection(call.request.key)  # the calls the service resets (`_Handler`)
        call.unaccepted = target != address
        call.expected = expected_answer(address, call.request.key)
    return calls


def describe(calls: list[Call]) -> str:
    """How the calls ended, one line for each way the task names: answered, hung until the deadline,
    cancelled early by the caller, reset by the service."""

    waiting = _("still waiting when its caller gave up")

    def endings(group: list[Call]) -> str:
        counted = Counter(c.ended_with for c in group)
        shown = {ending: waiting if ending == "nothing" else _shown(ending) for ending in counted}
        return ", ".join(f"{n} {shown[ending]}" for ending, n in counted.most_common())

    answered = [c for c in calls if not c.stuck and not c.cancelled and not c.reset]
    hung = [c for c in calls if c.stuck and not c.cancelled]
    cancelled = [c for c in calls if c.cancelled]
    reset = [c for c in calls if c.reset]
    right, on_time = sum(c.correct for c in answered), sum(c.correct for c in hung)
    # TRANSLATORS: the four lines of this table ("answered by the service:", "hung until their deadline:",
    # "cancelled early by their caller:", "reset by the service:") start their figures in one column.
    lines = [
        _("answered by the service:         {right} of {total} returned its answer", right=right, total=len(answered)),
        _(
            "hung until their deadline:       {on_time} of {total} raised TimeoutError on time ({endings})",
            on_time=on_time,
            total=len(hung),
            endings=endings(hung),
        ),
    ]
    if cancelled:
        lines.append(
            _("cancelled early by their caller: {count} ({endings})", count=len(cancelled), endings=endings(cancelled))
        )
    if reset:
        lines.append(
            _("reset by the service:            {count} ({endings})", count=len(reset), endings=endings(reset))
        )
    return "\n".join(lines)


_UNASKED = "answer never asked of the service"
_RETRIED = "TimeoutError, after asking {times} times (retried a hung call)"
_GAVE_UP_UNASKED = "TimeoutError, without asking the service"
# The calls that hang with a deadline at least this long must have asked the service before they gave up
# (the service counts the asks), at least half of them: a fetch that guessed which calls hang and only waited
# out their deadlines asked none. Half, not all: a right fetch in a thread pool that a burst has filled may
# give up on a call whose thread never started (`wait_for(to_thread(...))` cancels it), and the pool may
# take that long on a loaded machine.
_ASKS_WITHIN_MS = 250.0


def _shown(ended_with: str) -> str:
    """How a call ended, as the learner reads it: leaklab's own words ("answer", "nothing") translated, an
    exception's name as it is (`Call.ended_with` keeps the English, which the checks compare)."""
    if retried := re.fullmatch(re.escape(_RETRIED).replace(r"\{times\}", r"(\d+)"), ended_with):
        return _("TimeoutError, after asking {times} times (retried a hung call)", times=int(retried[1]))
    shown = {
        _UNASKED: _("answer never asked of the service"),
        _GAVE_UP_UNASKED: _("TimeoutError, without asking the service"),
        # TRANSLATORS: how a call ended, after "ended with" or a count: it returned an answer (perhaps a wrong one)
        "answer": _("answer"),
        # TRANSLATORS: how a call ended, after "ended with": nothing yet, it was still waiting when its caller gave up
        "nothing": _("nothing"),
    }
    return shown.get(ended_with, ended_with)


def _drawn_call(
    address: tuple[str, int], number: int, kind: str, deadline_ms: float, cancel_at: float, gap_ms: float
) -> tuple[tuple[Request, bool, float | None, float], tuple[str, int]]:
    """A drawn row's call, and where it goes: the service, or (`unaccepted`) its door, which never accepts."""
    answered = kind in ("answer", "cancelled answer", "reset")
    key = f"e{number}.0" if kind == "reset" else pick_key(address, number, answered=answered)
    request = Request(key, _answered_deadline_ms(deadline_ms) if answered else deadline_ms)
    cancel_ms = cancel_at * deadline_ms if kind.startswith("cancelled") else None
    return (request, not answered, cancel_ms, gap_ms), door_of(address) if kind == "unaccepted" else address


def _answered_deadline_ms(drawn_ms: float) -> float:
    """A drawn call the service answers gets a deadline far beyond its round trip (1.1-3 s, from its row's
    20-400 ms), so that a loaded machine cannot turn a right answer into a timeout."""
    return 1000.0 + 5 * drawn_ms


# How a drawn call ends: answered; never answered, until its deadline; cancelled by its caller before its
# deadline (at 0: before it has even started), whether the service would have answered it or not; or with
# an error, the service resetting the connection.
_ENDINGS = ("answer", "deadline", "cancelled", "cancelled answer", "reset")


def traffic(seed: int, *, calls: int = 30) -> dict:
    """A hidden burst drawn by Hypothesis (leaklab.scenarios._traffic): `calls` calls ending in every way
    (`_ENDINGS`, each at least calls // 8 times; at least a third answered), deadlines of 20-400 ms (the
    calls that hang until theirs: some at most 60 ms, some at least 300 ms, so that a timeout of the
    answer's own is early on some), a caller that cancels at 0-90% of its deadline, 0-2 ms between calls.
    One more call that hangs has a long deadline, the same as one of the answered calls' (1.1-3 s): a fetch
    that enforces only short deadlines hangs in it, and no deadline tells a fetch which calls will hang;
    another with that deadline is cancelled by its caller once the service has it. Two more go to a door
    beside the service that never accepts (`door_of`): their connect never completes."""
    from hypothesis import strategies as st

    from ._traffic import draw

    row = st.tuples(
        st.sampled_from((*_ENDINGS, "answer", "answer")),  # three in seven answered, on average
        st.integers(20, 400),
        st.sampled_from((0.0, 0.0, 0.05, 0.25, 0.5, 0.9)),
        st.sampled_from((0, 0, 1, 2)),
    )
    long = st.tuples(st.integers(0, calls - 2), st.integers(0, calls - 1))  # whose deadline it shares; where

    def covers(drawn: tuple[list, tuple]) -> bool:
        counts = [sum(r[0] == ending for r in drawn[0]) for ending in _ENDINGS]
        hung = [r[1] for r in drawn[0] if r[0] == "deadline"]
        spread = bool(hung) and min(hung) <= 60 and max(hung) >= 300
        return min(counts) >= calls // 8 and counts[0] >= calls // 3 and spread

    rows, (shared, place) = draw(st.tuples(st.lists(row, min_size=calls - 1, max_size=calls - 1), long), seed, covers)
    drawn = [list(r) for r in rows]
    answered = [r[1] for r in drawn if r[0] in ("answer", "cancelled answer", "reset")]  # covers: at least one
    long_ms = _answered_deadline_ms(answered[shared % len(answered)])
    drawn.insert(place, ["deadline", long_ms, 0.0, 0])
    # And one its caller cancels mid-call with that long deadline: the short ones may end by their own
    # deadline, or be cancelled before they connect, on a loaded machine; this one surely holds a connection.
    drawn.insert((place + calls // 3) % len(drawn), ["cancelled", long_ms, 0.05, 0])
    # And two calls to the service's door, whose connect never completes, with the shortest and the longest
    # deadline of the calls that hang (at most 60 ms, at least 300 ms): the deadline must cover connecting.
    hung = [r[1] for r in drawn if r[0] == "deadline" and r[1] <= 400]
    for deadline_ms, where in ((min(hung), shared), (max(hung), place + calls // 2)):
        drawn.insert(where % len(drawn), ["unaccepted", deadline_ms, 0.0, 0])
    return {"rows": drawn}


async def leaky_rounds(rounds: int = 10) -> AsyncIterator[str]:
    """The leak for `leaklab run`: 30 calls per round without a timeout; the 10 stuck ones hang for good."""
    stuck: list[asyncio.Task[str]] = []
    with dependency() as address:
        try:
            for _round in range(rounds):
                calls = [(asyncio.ensure_future(leaky_fetch(r, address)), hangs) for r, hangs in plan(30)]
                stuck += [call for call, hangs in calls if hangs]
                await asyncio.gather(*(call for call, hangs in calls if not hangs))  # the answered ones, done
                yield _("30 calls sent, 20 answered, {sockets} sockets open", sockets=open_sockets())
        finally:
            for call in stuck:
                call.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)


# --- grading ---------------------------------------------------------------------------------------


def probe(
    fetch: Fetch, *, calls: int = 30, rows: list[list] | None = None, **plan_options: float
) -> tuple[Awaitable[object], Callable[[], dict]]:
    """The calls a grader makes with a fetch function against a fresh service (planned, or drawn `rows`:
    see `traffic`), and their summary.

    The service is left running, so that what the calls left open is still open when it is counted;
    it ends by itself when the grading process does.
    """
    results: list[Call] = []
    address = start_service()
    planned = calls  # the planned burst's calls to the service; its calls to the door come on top
    calls = len(rows) if rows is not None else calls + len(UNACCEPTED_DEADLINES_MS)

    async def run() -> None:
        drawn = (
            {"rows": rows}
            if rows is not None
            else {
                "opaque_keys": address,
                "cancel_early": True,
                "resets": True,
                "deadlines_ms": GRADER_DEADLINES_MS,
                "unaccepted_ms": UNACCEPTED_DEADLINES_MS,
                **plan_options,
            }
        )
        recorder = Started()
        with recorder.recording(asyncio.get_running_loop()):
            results.extend(await send_calls(fetch, address, planned, recorder=recorder, **drawn))  # type: ignore[arg-type]

    def summary() -> dict:
        asked, times, ports = answered_keys(address), times_asked(address), client_ports(address)
        for call in results:  # an answer made up without asking the service is not the service's answer
            if call.correct and not call.stuck and call.request.key not in asked:
                call.ended_with = _UNASKED  # data, never translated: `correct` compares it
            elif call.correct and call.stuck and times.get(call.request.key, 0) > 1:  # a count, not a clock
                call.ended_with = _RETRIED.format(times=times[call.request.key])
        waited = [  # a call to the door never reaches the service: nothing to count
            c
            for c in results
            if c.stuck and not c.cancelled and not c.unaccepted and c.request.deadline_ms >= _ASKS_WITHIN_MS
        ]
        if 2 * sum(c.request.key in times for c in waited) < len(waited):
            for call in waited:
                if call.correct and call.request.key not in times:
                    call.ended_with = _GAVE_UP_UNASKED
        stuck = [c for c in results if c.stuck and not c.cancelled]
        healthy = [c for c in results if not c.stuck and not c.cancelled and not c.reset]
        failing = [c for c in results if c.cancelled or c.reset]
        cancelled = [c for c in results if c.cancelled]
        closed = {c.request.key: c.closed_when_ended(ports.get(c.request.key, [])) for c in cancelled}
        problems = [
            *(f"stuck calls time out: {c.request.key}: {_ended(c)}" for c in stuck if not c.correct),
            *(f"healthy calls answered: {c.request.key}: {_ended(c)}" for c in healthy if not c.correct),
            *(f"errors pass through: {c.request.key}: {_ended(c)}" for c in failing if not c.ended_as_told),
        ]
        if left_open := [key for key, shut in closed.items() if not shut]:  # one line: how many of how many
            problems.append(
                "cancelled calls close at once: "
                + _(
                    "{open} of {total} still had their socket open when the call had ended: {keys}",
                    open=len(left_open),
                    total=len(cancelled),
                    keys=", ".join(left_open),
                )
            )
        return {
            "requests": calls,
            "answered": len(results),
            "stuck_calls_time_out": [sum(c.correct for c in stuck), len(stuck)],
            "healthy_calls_answered": [sum(c.correct for c in healthy), len(healthy)],
            "errors_pass_through": [sum(c.ended_as_told for c in failing), len(failing)],
            "cancelled_calls_close_at_once": [sum(closed.values()), len(cancelled)],
            # what the count counts, so that "1 of 5" is read as the calls that closed, not those that failed
            "units": {"cancelled_calls_close_at_once": _("cancelled calls had closed their socket as they ended")},
            "problems": problems,
            # what a call started and left running after it had ended: `require_no_leftovers` fails on it
            "outlived_their_call": [f"{c.request.key}: {', '.join(c.outlived)}" for c in results if c.outlived],
        }

    return run(), summary


def _ended(call: Call) -> str:
    """How a call that went wrong ended, for a grader's problems: the deadline beside the time it took."""
    how = {"ending": _shown(call.ended_with), "took": call.took_ms, "deadline": call.request.deadline_ms}
    if call.cancelled:
        return _("cancelled by its caller, ended with {ending} after {took:.0f} ms (deadline {deadline:.0f} ms)", **how)
    if call.unaccepted:
        return _(
            "its connect never completed (sent where no connection is accepted): ended with {ending} after "
            "{took:.0f} ms (deadline {deadline:.0f} ms); the deadline covers connecting too",
            **how,
        )
    if call.answer or call.ended_with == "answer":
        return _(
            "ended with {ending} after {took:.0f} ms (deadline {deadline:.0f} ms), answer {answer!r}",
            answer=call.answer,
            **how,
        )
    return _("ended with {ending} after {took:.0f} ms (deadline {deadline:.0f} ms)", **how)


# How long after the burst the grader waits for the answer's threads to end before it counts what is
# still open: a thread that outlives its call (which `cancelled_calls_close_at_once` fails if it still holds
# the call's socket) ends by the call's deadline (at most 400 ms); the rest is margin for a loaded machine.
SETTLE_S = 3.0

# The scenario contract (leaklab.scenarios): the names an answer cell may use besides `asyncio`.
ANSWER = "fetch"  # the name the task has the answer cell bind, whatever object it binds there
ANSWER_NAMES = ("PAYLOAD_BYTES", "Request", "socket")


if __name__ == "__main__":
    _serve()
