"""A live task dump, pprof's goroutine dump for Python: every asyncio task and every thread, now.

Go services expose `/debug/pprof/goroutine?debug=1` by importing `net/http/pprof`; one call to
`serve_dump()` gives a running Python program the same page at `/debug/tasks`, served from a thread of
its own, so it answers even while an event loop is stuck. `?debug=1` folds identical stacks into counted
groups (a leak is one big group); `?debug=2` lists every task and thread with its full stack.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from ._census import registered_tasks
from ._errors import LeaklabError
from ._stacks import format_groups, group_stacks, task_stack, thread_stack

PATH = "/debug/tasks"
_POLL_S = 0.02  # how often the serving loop looks whether it should stop (the default is 0.5 s)


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
        title = f"tasks and threads ({loops} event loop{'s' * (loops != 1)})"
        return format_groups(group_stacks(tasks, threads), title=title) + "\n"
    if debug == 2:
        return _each(tasks, threads)
    raise ValueError(f"debug must be 1 (grouped stacks) or 2 (every stack), not {debug!r}")


def _each(tasks: list[asyncio.Task], threads: list[threading.Thread]) -> str:
    lines = [f"total {len(tasks) + len(threads)} ({len(tasks)} tasks, {len(threads)} threads)"]
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


class _Handler(BaseHTTPRequestHandler):
    server_version = "leaklab-dump"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.rstrip("/") not in (PATH, "/debug"):
            self._send(HTTPStatus.NOT_FOUND, f"not found: {url.path}; the dump is at {PATH}?debug=1 or ?debug=2\n")
            return
        if url.path.rstrip("/") == "/debug":
            self._send(HTTPStatus.OK, f"{PATH}?debug=1  grouped stacks with counts\n{PATH}?debug=2  every stack\n")
            return
        try:
            debug = int(parse_qs(url.query).get("debug", ["1"])[-1])
            self._send(HTTPStatus.OK, task_dump(debug=debug))
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, "debug must be 1 (grouped stacks) or 2 (every stack)\n")

    def _send(self, status: HTTPStatus, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # a notebook's output is no place for an access log


class DumpServer:
    """The task dump served over HTTP from a thread of its own; `stop()` (or leaving `with`) ends both."""

    def __init__(self, *, port: int = 6060, host: str = "127.0.0.1") -> None:
        try:
            self._http = ThreadingHTTPServer((host, port), _Handler)
        except OSError as exc:
            raise LeaklabError(
                f"cannot serve the task dump on {host}:{port}: {exc.strerror}; pass another port (0 takes any free one)"
            ) from None
        self._http.daemon_threads = False  # server_close() then waits for requests being answered
        self.host, self.port = host, self._http.server_address[1]
        self.url = f"http://{host}:{self.port}{PATH}"
        # shutdown() waits for the serving loop to look at its flag, which it does once per poll interval
        serve = partial(self._http.serve_forever, poll_interval=_POLL_S)
        self._thread = threading.Thread(target=serve, name="leaklab-dump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the server's thread: nothing is left running."""
        if self._thread.is_alive():
            self._http.shutdown()
            self._thread.join()
        self._http.server_close()

    def __enter__(self) -> DumpServer:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "serving" if self._thread.is_alive() else "stopped"
        return f"<DumpServer {state} {self.url}?debug=1>"


def serve_dump(*, port: int = 6060, host: str = "127.0.0.1") -> DumpServer:
    """Serve the task dump at `http://host:port/debug/tasks` (loopback only unless `host` says otherwise)."""
    return DumpServer(port=port, host=host)
