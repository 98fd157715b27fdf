"""A live task dump, pprof's goroutine dump for Python: every asyncio task and every thread, now.

Go services expose `/debug/pprof/goroutine?debug=1` by importing `net/http/pprof`; one call to
`serve_dump()` gives a running Python program the same page at `/debug/tasks`, served from a thread of
its own, so it answers even while an event loop is stuck. `?debug=1` folds identical stacks into counted
groups (a leak is one big group); `?debug=2` lists every task and thread with its full stack.

The server is one thread around a selector (`DumpServer`'s docstring says why): whatever clients do,
it costs one thread, a bounded number of sockets and buffers, and `stop()` returns at once.
"""

from __future__ import annotations

import asyncio
import re
import selectors
import socket
import sys
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from ._census import registered_tasks
from ._errors import LeaklabError
from ._i18n import _, ngettext
from ._stacks import counted, format_groups, group_stacks, task_stack, thread_stack

PATH = "/debug/tasks"
MAX_REQUEST_HEAD = 16 * 1024  # request line and headers together; a longer head is answered 431
_HEAD_END = re.compile(rb"\r?\n\r?\n")  # the blank line after the headers (bare LF accepted, as http.server does)
_CHUNK = 16 * 1024  # bytes read at a time
_LINGER_S = 1.0  # how long an answered connection is drained before it is closed (see `_finish`)
_BACKLOG = 128  # connections the kernel holds before they are accepted (socketserver's default is 5)


def _pending_tasks() -> list[asyncio.Task]:
    return [task for task in registered_tasks() if not task.done()]


def task_dump(*, debug: int = 1) -> str:
    """Every pending asyncio task of every event loop and every running thread, as plain text.

    `debug=1`: identical stacks grouped, with counts, biggest group first (pprof's `debug=1`).
    `debug=2`: each task and thread on its own, with its name, state and full stack (pprof's `debug=2`).
    """
    tasks, threads = _pending_tasks(), [t for t in threading.enumerate() if t.is_alive()]
    if debug == 1:
        loops = len({id(task.get_loop()) for task in tasks})
        title = ngettext("tasks and threads ({n} event loop)", "tasks and threads ({n} event loops)", loops)
        return format_groups(group_stacks(tasks, threads), title=title) + "\n"
    if debug == 2:
        return _each(tasks, threads)
    raise ValueError(_("debug must be 1 (grouped stacks) or 2 (every stack), not {debug!r}", debug=debug))


def _each(tasks: list[asyncio.Task], threads: list[threading.Thread]) -> str:
    headline = _(
        "total {total} ({tasks}, {threads})",
        total=len(tasks) + len(threads),
        tasks=counted(len(tasks), "task"),
        threads=counted(len(threads), "thread"),
    )
    lines = [headline]
    for task in tasks:
        frames, waiting_on = task_stack(task)
        loop = task.get_loop()
        state = "running" if loop.is_running() else "loop not running"
        lines += ["", f"task {task.get_name()!r} [waiting on {waiting_on}, loop {id(loop):#x} {state}]:"]
        lines += [f"\t{frame}" for frame in frames]
    current = sys._current_frames()
    for thread in threads:
        kind = "daemon thread" if thread.daemon else "thread"
        lines += ["", f"{kind} {thread.name!r} [native id {thread.native_id}]:"]
        lines += [f"\t{frame}" for frame in thread_stack(thread)] if thread.ident in current else ["\t(no frame)"]
    return "\n".join(lines) + "\n"


def _answer(method: str, target: str) -> tuple[HTTPStatus, str]:
    """The status and text for one request: the dump, the index at /debug, or why not."""
    if method != "GET":
        return HTTPStatus.NOT_IMPLEMENTED, _(
            "unsupported method {method!r}: the dump answers GET", method=method
        ) + "\n"
    url = urlsplit(target)
    grouped, each = f"{PATH}?debug=1", f"{PATH}?debug=2"
    if url.path.rstrip("/") not in (PATH, "/debug"):
        return HTTPStatus.NOT_FOUND, _(
            "not found: {path}; the dump is at {grouped} or ?debug=2", path=url.path, grouped=grouped
        ) + "\n"
    if url.path.rstrip("/") == "/debug":
        index = [_("{url}  grouped stacks with counts", url=grouped), _("{url}  every stack", url=each)]
        return HTTPStatus.OK, "\n".join(index) + "\n"
    try:
        debug = int(parse_qs(url.query).get("debug", ["1"])[-1])
        return HTTPStatus.OK, task_dump(debug=debug)
    except ValueError:
        return HTTPStatus.BAD_REQUEST, _("debug must be 1 (grouped stacks) or 2 (every stack)") + "\n"


def _parse(head: bytes) -> tuple[HTTPStatus, str]:
    """Answer a complete request head (request line and headers); the headers themselves are not needed."""
    words = head.split(b"\n", 1)[0].rstrip(b"\r").decode("iso-8859-1").split()
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        example = f"'GET {PATH}?debug=1 HTTP/1.1'"
        return HTTPStatus.BAD_REQUEST, _("bad request line: expected e.g. {example}", example=example) + "\n"
    try:
        return _answer(words[0], words[1])
    except Exception as exc:  # a bug in the dump: say so to the client, keep serving the others
        return HTTPStatus.INTERNAL_SERVER_ERROR, _("the task dump failed: {error!r}", error=exc) + "\n"


def _response(status: HTTPStatus, text: str) -> bytes:
    """One complete HTTP/1.0 response; the connection closes after it, as http.server's did."""
    body = text.encode()
    head = (
        f"HTTP/1.0 {status.value} {status.phrase}\r\n"
        f"Server: leaklab-dump\r\nDate: {formatdate(usegmt=True)}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("iso-8859-1") + body


class _Connection:
    """One client: what it sent so far, what is left to send it, and when it must be done."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = memoryview(b"")
        self.answered = False  # the response is queued; later bytes from the client are discarded
        self.deadline = deadline


class DumpServer:
    """The task dump served over HTTP from a thread of its own; `stop()` (or leaving `with`) ends both.

    One thread runs a selector over non-blocking sockets, and answers each request on that thread. This
    is simpler to get right than a pool of blocking handlers: nothing ever waits on a client, so a
    slow or silent client costs a buffer, never a thread; every limit is a plain check in one loop
    (at most `max_connections` open, the request head at most `MAX_REQUEST_HEAD` bytes, each connection
    `read_timeout_s` to send its request and again to read the answer, then it is closed with 408);
    and `stop()` just wakes the loop, which closes every socket and ends. A connection over the limit
    is answered 503 and closed at once. Disconnects, resets and timeouts are silent. The cost: requests
    are answered one at a time, which for a debug page that takes milliseconds is no cost at all.
    """

    def __init__(
        self,
        *,
        port: int = 6060,
        host: str = "127.0.0.1",
        max_connections: int = 64,
        read_timeout_s: float = 5.0,
    ) -> None:
        if max_connections < 1 or read_timeout_s <= 0:
            raise LeaklabError(_("max_connections must be at least 1 and read_timeout_s above 0"))
        self._listener = _listen(host, port)
        self.host, self.port = host, self._listener.getsockname()[1]
        self.url = f"http://{host}:{self.port}{PATH}"
        self.max_connections, self.read_timeout_s = max_connections, read_timeout_s
        self._connections: dict[socket.socket, _Connection] = {}
        self._stopping = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()  # stop() writes a byte to end the select
        self._wake_reader.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._serve, name="leaklab-dump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close every socket and wait for the server's thread: nothing is left running."""
        if not self._stopping.is_set():
            self._stopping.set()
            try:
                self._wake_writer.send(b"\0")
            except OSError:
                pass  # the socket buffer is full of earlier wake-ups: the loop is awake anyway
        self._thread.join()
        self._wake_writer.close()

    def __enter__(self) -> DumpServer:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "serving" if self._thread.is_alive() else "stopped"
        return f"<DumpServer {state} {self.url}?debug=1>"

    # Everything below runs on the server's thread only, so none of it needs a lock.

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                for key, _events in self._selector.select(self._wait()):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.data and self._connections.get(key.fileobj) is key.data:  # not closed meanwhile
                        self._ready(key.data)
                self._expire()
        finally:
            for conn in list(self._connections.values()):
                self._close(conn)
            self._selector.close()
            self._listener.close()
            self._wake_reader.close()

    def _wait(self) -> float | None:
        """Seconds until the earliest deadline (None: no connection, sleep until a client or stop())."""
        if not self._connections:
            return None
        return max(0.0, min(c.deadline for c in self._connections.values()) - time.monotonic())

    def _accept(self) -> None:
        for _attempt in range(_BACKLOG):
            try:
                sock, _address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. the client reset before it was accepted, or out of file descriptors
                return
            sock.setblocking(False)
            if len(self._connections) >= self.max_connections:
                _refuse(sock, HTTPStatus.SERVICE_UNAVAILABLE, _("too many connections to the task dump; retry") + "\n")
                continue
            conn = self._connections[sock] = _Connection(sock, time.monotonic() + self.read_timeout_s)
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _ready(self, conn: _Connection) -> None:
        try:
            if conn.outbox:
                self._send(conn)
            else:
                self._receive(conn)
        except (BlockingIOError, InterruptedError):
            pass  # spurious wake-up: try again on the next one
        except OSError:  # broken pipe, reset, ...: the client is gone, and that is its right
            self._close(conn)

    def _receive(self, conn: _Connection) -> None:
        data = conn.sock.recv(_CHUNK)
        if not data:
            self._close(conn)  # the client closed (or, after the answer, finished reading it)
            return
        if conn.answered:
            return  # draining what the client still sends, so that closing does not reset the connection
        conn.inbox += data
        end = _HEAD_END.search(conn.inbox)
        if end is None and len(conn.inbox) < MAX_REQUEST_HEAD:
            return
        if end is None or end.end() > MAX_REQUEST_HEAD:
            status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            text = _("request head over {limit} bytes", limit=MAX_REQUEST_HEAD) + "\n"
        else:
            status, text = _parse(bytes(conn.inbox[: end.end()]))
        conn.inbox, conn.answered = bytearray(), True
        conn.outbox = memoryview(_response(status, text))
        conn.deadline = time.monotonic() + self.read_timeout_s
        self._send(conn)

    def _send(self, conn: _Connection) -> None:
        sent = conn.sock.send(conn.outbox)
        conn.outbox = conn.outbox[sent:]
        if conn.outbox:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        else:
            self._finish(conn)

    def _finish(self, conn: _Connection) -> None:
        """Answered: half-close, then read and discard until the client closes, for at most `_LINGER_S`.

        Closing a socket with unread bytes in it sends a reset, which can reach the client before it has
        read the answer (a 431 to a client still sending its headers would be lost); draining avoids that.
        """
        conn.sock.shutdown(socket.SHUT_WR)
        conn.deadline = time.monotonic() + min(_LINGER_S, self.read_timeout_s)
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._connections.values() if c.deadline <= now]:
            self._close(conn, timed_out=not conn.answered)

    def _close(self, conn: _Connection, *, timed_out: bool = False) -> None:
        del self._connections[conn.sock]
        self._selector.unregister(conn.sock)
        if timed_out:  # still no complete request: say why before closing
            _refuse(
                conn.sock,
                HTTPStatus.REQUEST_TIMEOUT,
                _("no complete request in {seconds:g} s", seconds=self.read_timeout_s) + "\n",
            )
        else:
            conn.sock.close()


def _listen(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket, or a `LeaklabError` that says what to do."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server: restart without waiting
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise LeaklabError(
            _(
                "cannot serve the task dump on {host}:{port}: {reason}; pass another port (0 takes any free one)",
                host=host,
                port=port,
                reason=reason,
            )
        ) from None
    sock.setblocking(False)
    return sock


def _refuse(sock: socket.socket, status: HTTPStatus, text: str) -> None:
    """Answer without waiting (a short answer fits in the socket's buffer), then close; errors are silent."""
    try:
        sock.recv(MAX_REQUEST_HEAD)  # what already arrived: unread bytes would make close() a reset
    except OSError:
        pass
    try:
        sock.send(_response(status, text))
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sock.close()


def serve_dump(
    *, port: int = 6060, host: str = "127.0.0.1", max_connections: int = 64, read_timeout_s: float = 5.0
) -> DumpServer:
    """Serve the task dump at `http://host:port/debug/tasks` (loopback only unless `host` says otherwise)."""
    return DumpServer(port=port, host=host, max_connections=max_connections, read_timeout_s=read_timeout_s)
