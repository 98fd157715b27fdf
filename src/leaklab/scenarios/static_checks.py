"""Scenario 07, static checks: what a linter catches of the course's leaks, and what only running finds.

The article ends on tools: it says `go vet` finds some obvious context misuse (its lostcancel analyzer
reports a `cancel` not called on every path) and that subtler leaks also need runtime monitoring.
Python's twin of `go vet` here is ruff's asyncio rules: RUF006 (a task created and dropped) and the
ASYNC family (blocking calls in `async def`, busy waits, ...). This module runs them over the leaky code
of every lesson, and grades a learner's own check (a retry loop deaf to its stop signal) on snippets:
the visible ones are here, the hidden ones come from the notebook's hidden tests.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import hashlib
import importlib
import inspect
import json
import linecache
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from .._i18n import _
from ._checks import Checks

# Python's own export list (`import *`); the grader gives an answer cell ANSWER_NAMES, at the end.
__all__ = ["ast"]

# DO NOT CHANGE: the rules the lesson runs (with ruff 0.17.6, as pinned in requirements.lock).
RUFF_RULES = "RUF006,ASYNC"


# --- this lesson's own leaky code: the mistakes a linter does see -----------------------------------


async def _audit(request_id: int) -> None:
    await asyncio.sleep(0.01)  # writing the audit record somewhere slow


async def leaky_audit_handler(request_id: int) -> str:
    """The classic asyncio mistake: a fire-and-forget task whose result nobody keeps."""
    asyncio.create_task(_audit(request_id))  # noqa: RUF006 - the mistake this lesson shows ruff catching
    return f"request {request_id} served"


async def leaky_blocking_retry(call: Callable[[], object], stop: asyncio.Event) -> object:
    """A retry loop in `async def` that sleeps with `time.sleep`: it blocks the whole loop, and is deaf."""
    while not stop.is_set():
        try:
            return call()
        except OSError:
            time.sleep(0.02)  # noqa: ASYNC251 - the mistake this lesson shows ruff catching
    return None


async def leaky_async_retry(call: Callable[[], object], stop: asyncio.Event) -> object:
    """The same retry done "right" for asyncio, and still deaf to `stop`: ruff has nothing to say."""
    while True:
        try:
            return call()
        except OSError:
            await asyncio.sleep(0.02)


# --- the survey: every lesson's leaky code, through ruff -------------------------------------------


@dataclass(frozen=True)
class Leak:
    """What a piece of leaky code leaks, and how the lesson caught it at runtime."""

    name: str
    leak: str
    runtime: str


def leak_table() -> dict[str, list[Leak]]:
    """The leaky code of each scenario module, what it leaks and how its lesson caught it, in the learner's
    language (read when the survey is made).

    A module or a name that does not exist (yet) is skipped, so that the notebook runs while other lessons
    are written; tests/unit/test_static_checks.py says when a module is missing here or a name no longer
    exists."""
    return {
        "forgotten_cancel": [
            Leak(
                "leaky_handle_request",
                _("the child task waits forever to hand over its result once the handler gave up"),
                _("task count, +64 KiB per abandoned request (01)"),
            ),
            Leak(
                "leaky_handle_request_in_thread",
                _("the query thread waits forever in `reply.join()`"),
                _("thread count (01)"),
            ),
        ],
        "skipped_stop": [
            Leak(
                "article_worker",
                _("nothing: it ends the turn after its stop signal, but its `default:` never waits: it spins"),
                _("turns and CPU share in 50 ms (02)"),
            ),
            Leak(
                "LeakyWorker",
                _("the retry loop sleeps through `stop()`: one thread per restart during an outage"),
                _("thread count, +256 KiB per restart (02, and this lesson)"),
            ),
            Leak(
                "SpinningWorker",
                _("sees `stop()`, but spins while idle"),
                _("CPU time of its thread (02)"),
            ),
        ],
        "hung_call": [
            Leak(
                "leaky_fetch",
                _("awaits an answer with no deadline: tasks and sockets pile up"),
                _("task count, open sockets (03)"),
            ),
            Leak(
                "leaky_fetch_in_thread",
                _("a timeout around the thread frees the caller, not the thread stuck in `recv`"),
                _("thread count, open sockets (03)"),
            ),
        ],
        "lifeless_pool": [
            Leak(
                "_leaky_worker",
                _("waits on `queue.get()` for a job that never comes"),
                _("thread count (04)"),
            ),
            Leak(
                "leaky_process_batch",
                _("starts four workers per batch and never stops them"),
                _("thread count, +512 KiB per batch (04)"),
            ),
        ],
        "mystery_service": [
            Leak(
                "RpcClient",
                _("a caller whose request failed waits for ever on its future; its pending entry keeps the frame"),
                _("the task dump's biggest group of identical stacks (05)"),
            ),
        ],
        "leak_monitor": [
            Leak(
                "LeakyService",
                _("a notifier task per request waits for ever; every fourth request, a thread hangs in a call"),
                _("a monitor of task and thread counts (06)"),
            ),
        ],
        "week_in_production": [
            Leak(
                "LeakyService",
                _(
                    "01-04's leaks in one service: a child after a give-up, a deaf flusher, no timeout, "
                    "workers per batch"
                ),
                _("a daily gauge of tasks and threads over a simulated week (08)"),
            ),
        ],
        "static_checks": [
            Leak(
                "leaky_audit_handler",
                _("a task nobody owns: nothing cancels or awaits it, and it may be destroyed mid-flight"),
                _("pending tasks; 'Task was destroyed but it is pending!'"),
            ),
            Leak(
                "leaky_blocking_retry",
                _(
                    "a retry in `async def` that sleeps with `time.sleep`: the event loop is blocked, "
                    "nothing can set `stop`"
                ),
                _("the event loop's lag: every other task stalls"),
            ),
            Leak(
                "leaky_async_retry",
                _("a deaf retry: `stop` is never looked at while the calls fail"),
                _("task count after `stop` (02's asyncio flavour)"),
            ),
        ],
    }


# The leaky code of each scenario module, as `leak_table()` gave it on import (its descriptions in the
# language of that moment: the survey calls `leak_table()` itself, to describe them in the learner's).
LEAKY_CODE: dict[str, list[Leak]] = leak_table()


@dataclass(frozen=True)
class LeakyCode:
    """One piece of leaky code: where it is, its source (dedented), and the lines ruff needs before it."""

    scenario: str
    leak: Leak
    path: Path
    first_line: int  # the line of the module where `source` starts
    source: str
    imports: str  # the module's own imports, so that ruff knows what `asyncio` and `time` are

    @property
    def lesson(self) -> str:
        """The lesson's number, from its scenario module's docstring ("Scenario 02, ...")."""
        return _lesson(importlib.import_module(f"leaklab.scenarios.{self.scenario}")) or "?"

    @property
    def label(self) -> str:
        return f"{self.scenario}.{self.leak.name}"

    def module_line(self, line: int) -> int:
        """The module's line number of line `line` (1-based) of `source`."""
        return self.first_line + line - 1


def _lesson(module: object) -> str:
    """The lesson number a scenario module's docstring gives ("Scenario 02, ..."), or '' if none."""
    found = re.match(r"Scenario (\d+)", inspect.getdoc(module) or "")
    return found.group(1) if found else ""


def _imports(path: Path) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return "\n".join(ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom))


def leaky_code() -> list[LeakyCode]:
    """The leaky code of every scenario module that exists, with its source extracted by `inspect`."""
    found = []
    for scenario, leaks in leak_table().items():
        try:
            module = importlib.import_module(f"leaklab.scenarios.{scenario}")
        except Exception:  # a lesson not written yet, or half-written
            continue
        path = Path(inspect.getsourcefile(module) or "")
        imports = _imports(path)
        for leak in leaks:
            if not hasattr(module, leak.name):
                continue
            lines, first_line = inspect.getsourcelines(getattr(module, leak.name))
            found.append(LeakyCode(scenario, leak, path, first_line, textwrap.dedent("".join(lines)), imports))
    return sorted(found, key=lambda code: code.lesson)  # stable: each module's pieces keep their order


@functools.cache
def ruff_command() -> list[str]:
    """How to run the course venv's ruff: `python -m ruff`, or the `ruff` beside the interpreter."""
    try:
        subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True, check=True, timeout=30)
    except (subprocess.CalledProcessError, OSError):
        return [str(Path(sys.executable).with_name("ruff"))]
    return [sys.executable, "-m", "ruff"]


def run_ruff(sources: dict[str, str]) -> dict[str, list[dict]]:
    """ruff's findings (`RUF006,ASYNC` only, no project config, `noqa` comments ignored) per source.

    `--isolated` keeps the repository's own configuration out; `--ignore-noqa` because the scenario
    modules silence these very findings to keep the course's lint clean.
    """
    key = hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()
    if key not in _ruff_runs:
        _ruff_runs[key] = _run_ruff(sources)
    return {name: list(found) for name, found in _ruff_runs[key].items()}


_ruff_runs: dict[str, dict[str, list[dict]]] = {}  # the same sources give the same findings: run once


def _run_ruff(sources: dict[str, str]) -> dict[str, list[dict]]:
    with tempfile.TemporaryDirectory(prefix="leaklab-ruff-") as folder:
        files = {}
        for number, (name, source) in enumerate(sources.items()):
            files[f"snippet_{number:03}.py"] = name
            (Path(folder) / f"snippet_{number:03}.py").write_text(source, encoding="utf-8")
        command = [*ruff_command(), "check", "--isolated", "--select", RUFF_RULES, "--ignore-noqa"]
        command += ["--output-format", "json", "--no-cache", "--exit-zero", folder]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    findings: dict[str, list[dict]] = {name: [] for name in sources}
    for finding in json.loads(done.stdout):
        findings[files[Path(finding["filename"]).name]].append(finding)
    return findings


@dataclass
class Row:
    """One line of the survey's table."""

    code: LeakyCode
    ruff: list[tuple[str, int]] = field(default_factory=list)  # (rule, line of the module)
    checker: list[int] | str | None = None  # the learner's check: module lines, or what it raised

    def ruff_text(self) -> str:
        found = [_("**{rule}** (line {line})", rule=rule, line=line) for rule, line in self.ruff]
        return ", ".join(found) or _("nothing")

    def checker_text(self) -> str:
        if isinstance(self.checker, str):
            return self.checker
        return ", ".join(_("**deaf retry** (line {line})", line=line) for line in self.checker or []) or _("nothing")


@dataclass(repr=False)
class Survey:
    """Which leaks ruff (and, given one, your check) finds in the course's leaky code: a table."""

    rows: list[Row]
    with_checker: bool = False

    def _repr_markdown_(self) -> str:
        columns = [_("lesson"), _("leaky code"), _("what leaks"), "ruff `RUF006,ASYNC`"]
        if self.with_checker:
            columns.append(_("your check"))
        columns.append(_("found at runtime by"))
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in self.rows:
            cells = [
                row.code.lesson,
                f"`{row.code.scenario}.{row.code.leak.name}`",
                row.code.leak.leak,
                row.ruff_text(),
            ]
            if self.with_checker:
                cells.append(row.checker_text())
            cells.append(row.code.leak.runtime)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self._repr_markdown_()


def survey(checker: Callable[[str], list[int]] | None = None) -> Survey:
    """Run ruff (and `checker`, if given) over the leaky code of every lesson; measured, not written down."""
    codes = leaky_code()
    findings = run_ruff({code.label: f"{code.imports}\n{code.source}" for code in codes})
    rows = []
    for code in codes:
        offset = code.imports.count("\n") + 1  # the import lines put before the source
        ruff = [(f["code"], code.module_line(f["location"]["row"] - offset)) for f in findings[code.label]]
        row = Row(code, sorted(ruff, key=lambda found: found[1]))
        if checker is not None:
            try:
                row.checker = [code.module_line(line) for line in checker(code.source)]
            except Exception as exc:
                row.checker = _("raised {error}", error=type(exc).__name__)
        rows.append(row)
    return Survey(rows, with_checker=checker is not None)


def source_of(obj: object) -> str:
    """The dedented source of a function or class, also one defined in a notebook cell."""
    try:
        return textwrap.dedent(inspect.getsource(obj))  # type: ignore[arg-type]
    except (OSError, TypeError):
        # A class defined in a notebook: its methods' code knows the cell, whose source IPython keeps.
        code = next(f.__code__ for f in vars(obj).values() if hasattr(f, "__code__"))
        return "".join(linecache.getlines(code.co_filename))


# --- grading: snippets to judge ------------------------------------------------------------------
#
# Only the snippets the notebook's visible tests use are here. The hidden tests' snippets live in the
# notebook's hidden test regions (nbgrader strips them from the learner's copy) and reach `probe` as an
# option: an answer cell can import this module, so nothing here may tell it the hidden answers.

_DEAF = "  # <- deaf"  # marks the expected lines in a snippet's text; removed before a checker sees it
_CASE = "# case: "


@dataclass(frozen=True)
class Snippet:
    """A piece of code to judge: its source, and the lines of its deaf handlers (none if it is correct)."""

    name: str
    source: str
    deaf: tuple[int, ...]
    flavour: str  # "thread" or "asyncio"
    case: str = ""  # what kind of case it is, for a failure's message (never its code)


def _snippet(name: str, text: str, flavour: str = "thread") -> Snippet:
    """A snippet from its text, with each deaf handler's line marked `# <- deaf`, and what kind of case it
    is on a first line `# case: ...` (neither reaches a checker)."""
    lines = textwrap.dedent(text).lstrip("\n").splitlines()
    case = lines.pop(0).removeprefix(_CASE).strip() if lines and lines[0].startswith(_CASE) else ""
    deaf = tuple(number for number, line in enumerate(lines, 1) if line.endswith(_DEAF))
    source = "\n".join(line.removesuffix(_DEAF) for line in lines) + "\n"
    return Snippet(name, source, deaf, flavour, case)


VISIBLE: list[Snippet] = [
    _snippet(
        "uploader_retry_sleeps",
        """
        # case: a retry loop inside a worker loop: the inner `while True` never looks at the stop signal
        class Uploader:
            def __init__(self, files, store):
                self.files, self.store = files, store
                self.stop = threading.Event()

            def run(self):
                while not self.stop.is_set():
                    try:
                        path = self.files.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    while True:
                        try:
                            self.store.put(path)
                            break
                        except StoreError:  # <- deaf
                            time.sleep(5)
        """,
    ),
    _snippet(
        "idle_poll_continues",
        """
        # case: a `continue` in a handler, back to a loop that never tests the stop signal
        def poll(inbox, stop):
            while True:
                try:
                    message = inbox.get(timeout=1)
                except queue.Empty:  # <- deaf
                    continue
                handle(message)
                if stop.is_set():
                    return
        """,
    ),
    _snippet(
        "metrics_sleep_in_checked_loop",
        """
        # case: a loop that tests the stop signal, with a long sleep in a handler that does not
        def ship_metrics(client, stop, interval):
            while not stop.is_set():
                try:
                    client.send(collect())
                except ConnectionError as error:  # <- deaf
                    log.warning("metrics not sent: %s", error)
                    time.sleep(30)
                stop.wait(interval)
        """,
    ),
    _snippet(
        "feed_one_handler_of_two",
        """
        # case: two handlers, only one of which looks at the stop signal
        def follow(feed, stop):
            while True:
                try:
                    entry = feed.next_entry(timeout=2)
                except TimeoutError:  # <- deaf
                    continue
                except OSError:
                    if stop.is_set():
                        return
                    time.sleep(1)
                else:
                    publish(entry)
        """,
    ),
    _snippet(
        "uploader_waits_on_stop",
        """
        # case: correct: every wait of the retry is on the stop signal
        class Uploader:
            def __init__(self, files, store):
                self.files, self.store = files, store
                self.stop = threading.Event()

            def run(self):
                while not self.stop.is_set():
                    try:
                        path = self.files.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    while not self.stop.is_set():
                        try:
                            self.store.put(path)
                            break
                        except StoreError:
                            self.stop.wait(5)
        """,
    ),
    _snippet(
        "drain_sleeps_then_checks",
        """
        # case: correct: the handler sleeps, then looks at the stop signal
        def drain(source, sink, stop):
            while True:
                try:
                    sink.write(source.read())
                except OSError:
                    time.sleep(0.5)
                    if stop.is_set():
                        break
        """,
    ),
    _snippet(
        "config_no_loop",
        """
        # case: correct: a handler that sleeps, with no loop around it
        import json
        import time


        def load_config(path):
            try:
                with open(path) as file:
                    return json.load(file)
            except FileNotFoundError:
                time.sleep(0.1)  # the file may be in the middle of a rename: one more try
            with open(path) as file:
                return json.load(file)
        """,
    ),
    _snippet(
        "bounded_for_retries",
        """
        # case: correct: a bounded `for` retry, no worker loop
        def fetch(url):
            for attempt in range(3):
                try:
                    return download(url)
                except TimeoutError:
                    time.sleep(2**attempt)
            raise TimeoutError(url)
        """,
    ),
    _snippet(
        "bounded_retry_inside_worker_loop",
        """
        # case: correct: a bounded `for` retry inside a loop that tests the stop signal
        class Sender:
            def run(self):
                while not self.stop.is_set():
                    message = self.outbox.get()
                    for attempt in range(5):
                        try:
                            self.transport.send(message)
                            break
                        except TransportError:
                            time.sleep(0.2 * 2**attempt)
        """,
    ),
    _snippet(
        "callback_defined_in_worker_loop",
        """
        # case: correct: the handler is in a function the loop defines, not in the loop itself
        def supervise(spawn, stop):
            while not stop.is_set():
                def on_crash(error):
                    try:
                        report(error)
                    except OSError:
                        time.sleep(1)  # the report server may be restarting: one second, one more try

                child = spawn(on_crash=on_crash)
                child.join()
        """,
    ),
    _snippet(
        "replicator_delay_helper",
        """
        # case: a handler whose body defines a function: still the loop's handler, and deaf
        class Replicator:
            def run(self):
                while True:
                    try:
                        self.push(self.outbox.get())
                    except ReplicaDown as error:  # <- deaf
                        def delay():
                            return min(30.0, 0.5 * 2**error.failures)

                        log.warning("replica down, retrying in %.1f s", delay())
                        time.sleep(delay())
        """,
    ),
    _snippet(
        "upload_until_complete",
        """
        # case: correct: `while not upload.complete()` is a loop over work, not a worker loop
        def upload_parts(upload):
            while not upload.complete():
                part = upload.next_part()
                try:
                    upload.send(part)
                except ThrottledError:
                    time.sleep(upload.retry_after)
        """,
    ),
    _snippet(
        "flush_while_stop_and_online",
        """
        # case: correct: `while not stop.is_set() and ...` is a `while` with another test, not a worker loop
        def flush(buffer, sink, stop, online):
            while not stop.is_set() and online.is_set():
                try:
                    sink.write(buffer.pop())
                except OSError:
                    time.sleep(0.5)
        """,
    ),
    _snippet(
        "async_delivery_retry_sleeps",
        """
        # case: asyncio: a retry loop inside a worker loop, `await asyncio.sleep` in its handler
        async def deliver_all(queue, stop):
            while not stop.is_set():
                message = await queue.get()
                while True:
                    try:
                        await deliver(message)
                        break
                    except DeliveryError:  # <- deaf
                        await asyncio.sleep(0.5)
        """,
        "asyncio",
    ),
    _snippet(
        "async_heartbeat_checked_loop",
        """
        # case: asyncio: a loop that tests the stop signal, a handler that sleeps without it
        class Heartbeat:
            async def run(self):
                while not self.stopping.is_set():
                    try:
                        await self.peer.ping()
                    except ConnectionError:  # <- deaf
                        self.misses += 1
                        await asyncio.sleep(self.backoff)
                    else:
                        await asyncio.sleep(self.interval)
        """,
        "asyncio",
    ),
    _snippet(
        "async_delivery_waits_on_stop",
        """
        # case: asyncio, correct: the retry waits on the stop signal
        async def deliver_all(queue, stop):
            while not stop.is_set():
                message = await queue.get()
                while not stop.is_set():
                    try:
                        await deliver(message)
                        break
                    except DeliveryError:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), timeout=0.5)
        """,
        "asyncio",
    ),
    _snippet(
        "async_tail_sleeps_then_checks",
        """
        # case: asyncio, correct: the handler sleeps, then looks at the stop signal
        async def tail(stream, stop):
            while True:
                try:
                    print(await stream.readline())
                except ConnectionResetError:
                    await asyncio.sleep(1)
                    if stop.is_set():
                        return
        """,
        "asyncio",
    ),
    _snippet(
        "async_notify_defined_in_worker_loop",
        """
        # case: asyncio, correct: the handler is in a coroutine the loop defines, not in the loop itself
        def dispatch(events, loop, stop):
            while not stop.is_set():
                event = events.get()

                async def notify(event=event):
                    try:
                        await event.subscriber.send(event)
                    except ConnectionError:
                        await asyncio.sleep(1)

                asyncio.run_coroutine_threadsafe(notify(), loop)
        """,
        "asyncio",
    ),
    _snippet(
        "async_relay_for_each_message",
        """
        # case: asyncio, correct: a handler in an `async for` loop, which ends with its stream
        async def relay(stream, sink):
            async for message in stream:
                try:
                    await sink.send(message)
                except ConnectionError:
                    await asyncio.sleep(1)
        """,
        "asyncio",
    ),
    _snippet(
        "tailer_handler_in_loop_else",
        """
        # case: correct: the handler is in the `else:` of a `while not stop.is_set():` loop, not in its body
        def tail(log, stop):
            while not stop.is_set():
                if not log.follow():
                    break
            else:
                try:
                    log.close()
                except OSError:
                    time.sleep(0.5)
        """,
    ),
    _snippet(
        "sync_nested_handler_before_a_flat_one",
        """
        # case: two deaf handlers, the first nested deeper than the second
        def sync(store, stop):
            while True:
                with store.lock:
                    try:
                        store.sync()
                    except OSError:  # <- deaf
                        time.sleep(2)


        def prune(store, stop):
            while not stop.is_set():
                try:
                    store.prune()
                except OSError:  # <- deaf
                    time.sleep(2)
        """,
    ),
    _snippet(
        "stats_counts_a_sleep_no_retry",
        """
        # case: correct: `count_sleeps` is not a sleep: the handler neither sleeps nor continues
        def sample(sensor, stats, stop):
            while not stop.is_set():
                try:
                    stats.add(sensor.read())
                except OSError:
                    stats.count_sleeps()
                stop.wait(1)
        """,
    ),
    _snippet(
        "async_for_inside_worker_loop",
        """
        # case: asyncio, correct: the handler's innermost loop is an `async for`, inside a `while True:`
        async def subscribe(open_feed):
            while True:
                async for event in await open_feed():
                    try:
                        await dispatch(event)
                    except ConnectionError:
                        await asyncio.sleep(0.5)
        """,
        "asyncio",
    ),
    _snippet(
        "async_wait_for_a_connect_then_sleep",
        """
        # case: asyncio: the handler's `wait_for` waits on a connect, not on the stop signal
        async def keep_open(channel, stop):
            while not stop.is_set():
                try:
                    await channel.pump()
                except OSError:  # <- deaf
                    await asyncio.wait_for(channel.connect(), timeout=10)
                    await asyncio.sleep(0.5)
        """,
        "asyncio",
    ),
]

Checker = Callable[[str], object]


def snippets_from(option: str | dict[str, str]) -> list[Snippet]:
    """The snippets a test cell names: "visible", or {name: text with deaf lines marked} (its hidden ones)."""
    if option == "visible":
        return VISIBLE
    if not isinstance(option, dict) or not all(isinstance(v, str) for v in option.values()):
        raise ValueError(
            _('snippets must be "visible" or a dict of name -> marked source, not {option!r:.60}', option=option)
        )
    return [_snippet(name, text, "asyncio" if "async def" in text else "thread") for name, text in option.items()]


def _lines_found(checker: Checker, source: str) -> list[int] | str:
    """What the checker says about a snippet, as line numbers in the order it gave them (the task asks for
    increasing order, each once: (c) compares the list as it is); or the problem, if it raised."""
    try:
        result = checker(source)
        lines = list(result)  # type: ignore[call-overload]
    except Exception as exc:
        return f"raised {type(exc).__name__}: {exc}" if str(exc) else f"raised {type(exc).__name__}"
    if not all(type(line) is int for line in lines):
        return f"returned {result!r:.200}, not a list of line numbers"
    return lines


def _grade(found: dict[str, list[int] | str], snippets: list[Snippet], checks: Checks) -> None:
    flagged_any = any(isinstance(found[s.name], list) and found[s.name] for s in snippets if s.deaf)
    for snippet in snippets:
        lines, name, deaf = found[snippet.name], snippet.name, list(snippet.deaf)
        if isinstance(lines, str):  # it raised, or returned something else: this snippet fails
            problem = exact = flagged = _("snippet {name!r}: {said}", name=name, said=lines)
        else:
            problem = (
                _("snippet {name!r} is correct, but your check flagged lines {lines}", name=name, lines=lines)
                if lines
                else ""
            )
            exact = (
                ""
                if lines == deaf
                else _(
                    "snippet {name!r}: deaf handlers on lines {deaf}, your check said {lines}",
                    name=name,
                    deaf=deaf,
                    lines=lines,
                )
            )
            flagged = (
                ""
                if lines
                else _("snippet {name!r}: not flagged, yet it has deaf handlers on lines {deaf}", name=name, deaf=deaf)
            )
        if snippet.case:  # what kind of case it is, after what went wrong (nbgrader's Validate cuts long lines)
            problem, exact, flagged = (f"{said} ({snippet.case})" if said else "" for said in (problem, exact, flagged))
        if not snippet.deaf:
            if not problem and not flagged_any:
                problem = _(
                    "snippet {name!r}: your check flags none of the leaky snippets either: "
                    "passing this one says nothing",
                    name=name,
                )
            checks.record("passes_correct", problem)
            if snippet.flavour == "asyncio":  # (d) is the asyncio flavour judged, not only its leaks flagged
                checks.record("async_flavour", problem)
        elif snippet.flavour == "asyncio":
            checks.record("async_flavour", exact)
        else:
            checks.record("flags_leaky", flagged)
            checks.record("right_lines", exact)


def probe(checker: Checker, *, sources: dict[str, str] | None = None) -> tuple[Awaitable[object], Callable[[], dict]]:
    """What a learner's `find_deaf_retries` says about each snippet's source (`sealed`: no answer key
    reaches the answer's process); `judge` grades it in the grader's."""
    found: dict[str, list[int] | str] = {}
    sources = sources if sources is not None else sealed()["sources"]

    def run() -> None:
        for name, source in sources.items():
            found[name] = _lines_found(checker, source)

    return asyncio.to_thread(run), lambda: {"found": dict(found)}


def sealed(*, snippets: str | dict[str, str] = "visible") -> dict:
    """The probe's options for the isolated child: each snippet's source, without its deaf marks."""
    return {"sources": {snippet.name: snippet.source for snippet in snippets_from(snippets)}}


def judge(outcome: dict, *, snippets: str | dict[str, str] = "visible") -> dict:
    """The graded properties, from what the child reported the answer said about each snippet (anything
    else it might report counts as an answer the grader cannot read)."""
    reported = outcome.get("found") if isinstance(outcome.get("found"), dict) else {}
    found: dict[str, list[int] | str] = {}
    for snippet in snippets_from(snippets):
        said = reported.get(snippet.name)  # type: ignore[union-attr]
        readable = isinstance(said, str) or (isinstance(said, list) and all(type(n) is int for n in said))
        found[snippet.name] = said if readable else _("gave no answer the grader can read")  # type: ignore[assignment]
    checks = Checks()
    _grade(found, snippets_from(snippets), checks)
    return checks.summary()


# The scenario contract (leaklab.scenarios): the names an answer cell may use besides `asyncio`.
ANSWER = "find_deaf_retries"  # the name the task has the answer cell bind, whatever object it binds there
ANSWER_NAMES = ("ast",)
