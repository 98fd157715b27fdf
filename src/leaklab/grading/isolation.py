"""Run a learner's handler in a fresh process and measure what it leaves behind (the parent's side).

A notebook's kernel is the learner's: it may have leaked tasks from the lesson's demos, and an answer
cell may rebind `asyncio.all_tasks`, `threading.enumerate` or a builtin. So the grader re-runs the
answer cell's source in a new interpreter (`child`), whose measuring tools were taken before that code
ran. This module starts that interpreter, bounds it in time and output, and reads its result.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import linecache
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FunctionType, MethodType
from typing import TYPE_CHECKING

from .._i18n import LANGUAGE_ENV, _, language, ngettext
from . import handoff, sandbox, settings, watch
from .results import Reason

if TYPE_CHECKING:
    from ..scenarios import JudgedOutside

RUN_TIMEOUT_ENV = "LEAKLAB_RUN_TIMEOUT"  # the class grader's limit for one run, in seconds
# The child is started by `-c`, not `-m`: its code then lives in `leaklab.grading.child`, a leaklab
# module that the child guards like the others, never in `__main__`.
_CHILD = [sys.executable, "-c", "from leaklab.grading.child import main; main()"]


def _timeout_s() -> float:
    try:
        chosen = float(os.environ.get(RUN_TIMEOUT_ENV, settings.RUN_TIMEOUT_S))
    except ValueError:
        chosen = settings.RUN_TIMEOUT_S
    return max(settings.MIN_RUN_TIMEOUT_S, chosen)


@dataclass
class Verdict:
    """What a verify cell prints: the visible tests' own checks of one run, each passed or not.

    The first line starts with ✓ only when every check passed, so a missing or wrong answer never
    reads as success; a figure can carry that line (`plot_runs(..., verdict=)`).
    """

    checks: list[tuple[str, str | None]]  # (check, None when passed or why it failed)
    no_answer: str | None = None  # the answer is still the exercise's stub

    @property
    def passed(self) -> bool:
        return self.no_answer is None and all(failure is None for _, failure in self.checks)

    @property
    def headline(self) -> str:
        if self.no_answer:
            return "✗ " + _("no answer yet: {why}", why=self.no_answer)
        failed = sum(failure is not None for _check, failure in self.checks)
        if not failed:
            return "✓ " + _(
                "every visible check passes ({passed} of {total})", passed=len(self.checks), total=len(self.checks)
            )
        return "✗ " + _("not yet: {failed} of {total} visible checks fail", failed=failed, total=len(self.checks))

    def __str__(self) -> str:
        lines = [self.headline]
        for check, failure in self.checks:
            if failure is None:
                lines.append(f"  ✓ {check}")
            else:
                first, *rest = failure.splitlines() or [""]
                lines.append(f"  ✗ {check}: {first}")
                lines += [f"      {line}" for line in rest[:12]]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(str(self))  # type: ignore[attr-defined]


class RunFailed(AssertionError):
    """A test failed because its run did not produce a measurement; `reason` says why, when a limit or
    an answer that ended its run explains it."""

    def __init__(self, message: str, reason: Reason | None = None) -> None:
        super().__init__(message)
        self.reason = reason


def _met_the_stub(said: list[str]) -> bool:
    """Whether a run's error or problems show the exercise's stub (by their text: the scenarios do not yet
    report it as data)."""
    return any("NotImplementedError" in text for text in said)


@dataclass
class IsolatedRun:
    """What a handler did in a fresh process: the scenario's outcome and what it left behind."""

    outcome: dict = field(default_factory=dict)
    leftover_tasks: int = 0
    leftover_threads: int = 0
    leftover_files: int = 0  # sockets and files left open, counted by the operating system
    leftover_processes: int = 0  # processes the answer started that still ran, seen by the parent in /proc
    closed_by_finaliser: int = 0  # sockets and connections let go open, closed by their finaliser (ResourceWarning)
    died_unseen: int = 0  # the answer's tasks that ended with an exception nobody retrieved
    retained_bytes_per_request: float = 0.0
    leak_report: str = ""
    error: str | None = None
    reason: Reason | None = None  # why there is an error, where a limit or an ended answer explains it

    def __post_init__(self) -> None:
        if self.reason is not None:
            self.reason = Reason(self.reason)

    def explain(self) -> str:
        """A few lines for an assertion message: the error, or the problems the scenario found."""
        if self.error:
            return self.error
        problems = self.outcome.get("problems", [])[:3]
        return "\n".join(map(_problem, problems)) if problems else _("no problem found")

    def _require_result(self) -> None:
        __tracebackhide__ = True  # a failing test shows its message, not leaklab's frames
        if self.error:
            raise RunFailed(self.error, self.reason)

    def verdict(self, *properties: str, no_leftovers: bool = False, retained_below: int | None = None) -> Verdict:
        """Judge the run by the checks the visible tests make (`require`, `require_no_leftovers`,
        `require_retained_below`), each on its own, for a verify cell to print."""
        said = [self.error or "", *self.outcome.get("problems", [])]
        if _met_the_stub(said):
            return Verdict([], no_answer=_("it raises NotImplementedError: the exercise's stub is still there"))
        named: list[tuple[str, Callable[[], None]]] = [
            (check_label(name), lambda name=name: self.require(name)) for name in properties
        ]
        if no_leftovers:
            named.append((_("nothing left behind"), self.require_no_leftovers))
        if retained_below is not None:
            named.append(
                (
                    _("under {limit:g} KiB held per request", limit=retained_below / 1024),
                    lambda: self.require_retained_below(retained_below),
                )
            )
        checks: list[tuple[str, str | None]] = []
        for check, require in named:
            try:
                require()
            except AssertionError as failure:
                checks.append((check, str(failure).removeprefix(f"{check}: ")))
            else:
                checks.append((check, None))
        return Verdict(checks)

    def require(self, *properties: str) -> None:
        """Fail unless the run worked and every request it counts passed each named property.

        The properties are the scenario's `[passed, out of]` counts, such as "completed_with_result";
        a scenario that sends requests also reports how many it sent and how many got an answer, and
        may name what a property counts (`"units": {"week_flat": "checks"}`) where it is not requests.
        """
        __tracebackhide__ = True
        self._require_result()
        unanswered = self.outcome.get("requests", 0) - self.outcome.get("answered", 0)
        if unanswered:
            message = _("{count} requests never got an answer; where they wait:", count=unanswered)
            raise AssertionError(f"{message}\n{self.leak_report}")
        unit = "requests" if "requests" in self.outcome else "checks"
        for name in properties:
            label = name.replace("_", " ")  # how the scenario's problems name the property
            if name not in self.outcome:  # the run stopped before this property was checked
                # what it most likely waits in, as the scenario names it (`Summary.unfinished`)
                why = self.outcome.get("unfinished") or _("a call that never returns?")
                message = _(
                    "{check}: never checked: the burst did not finish ({why})", check=check_label(name), why=why
                )
                stuck = "; " + _("where it was stuck:") + f"\n{self.leak_report}" if self.leak_report else ""
                raise RunFailed(message + stuck, Reason.TIMEOUT)
            passed, total = self.outcome[name]
            if passed < total:
                own = [p for p in self.outcome.get("problems", []) if p.startswith(label + ":")]
                detail = "\n".join(map(_problem, own[:3])) if own else self.explain()
                counted = _unit(self.outcome.get("units", {}).get(name, unit))
                if _met_the_stub(own):  # not partial credit: no answer
                    stub = _("no answer yet: NotImplementedError (the stub)")  # short: Validate cuts long lines
                    raise AssertionError(f"{check_label(name)}: {stub}\n{detail}")
                count = _("{passed} of {total} {counted}", passed=passed, total=total, counted=counted)
                raise AssertionError(f"{check_label(name)}: {count}\n{detail}")

    def require_no_leftovers(self) -> None:
        """Fail unless no task, thread or open socket outlived the burst, nor (where the scenario notes it:
        `outlived_their_call`) long outlived the call that started it."""
        __tracebackhide__ = True
        self._require_result()  # a run that failed shows nothing about leftovers
        if self.leftover_tasks or self.leftover_threads:
            raise AssertionError(_("left behind after the burst:") + f"\n{self.leak_report}")
        if outlived := self.outcome.get("outlived_their_call"):
            raise AssertionError(
                ngettext(
                    "{n} call left what it started running long after it had ended (at nine tenths of its "
                    "deadline): stop it when the call ends, on every way out",
                    "{n} calls left what they started running long after they had ended (at nine tenths of "
                    "their deadline): stop it when the call ends, on every way out",
                    len(outlived),
                )
                + "".join(f"\n{line}" for line in outlived[:3])
            )
        if self.leftover_files:
            raise AssertionError(
                _("{count} sockets or files were left open after the burst", count=self.leftover_files)
            )
        if self.leftover_processes:
            raise AssertionError(_("processes were left running after the burst:") + f"\n{self.leak_report}")
        if self.died_unseen:
            raise AssertionError(
                _(
                    "{count} tasks it started died of an exception nobody retrieved: what they held was "
                    "dropped, their error unseen",
                    count=self.died_unseen,
                )
                + f"\n{self.leak_report}"
            )
        if self.closed_by_finaliser:
            raise AssertionError(
                _(
                    "{count} connections were let go without being closed: their finaliser closed them "
                    "(ResourceWarning: unclosed ...); close each one yourself, in a finally:",
                    count=self.closed_by_finaliser,
                )
            )

    def require_retained_below(self, limit_bytes: int) -> None:
        """Fail unless the memory still held after the burst is under `limit_bytes` per request."""
        __tracebackhide__ = True
        self._require_result()
        held = self.retained_bytes_per_request
        if held >= limit_bytes:
            raise AssertionError(
                _(
                    "{held:.1f} KiB per request is still held after the burst (limit {limit:g} KiB)",
                    held=held / 1024,
                    limit=limit_bytes / 1024,
                )
            )


def check_label(name: str) -> str:
    """A scenario's property as a verdict names it: `completed_with_result` -> "completed with result",
    in the learner's language."""
    return _(name.replace("_", " "))


def _unit(counted: str) -> str:
    return {"requests": _("requests"), "checks": _("checks"), "calls": _("calls")}.get(counted, counted)


def _problem(line: str) -> str:
    """A scenario's problem line (`"<property>: <what went wrong>"`, the property in English so that
    `require` finds it) with its property named in the learner's language."""
    name, colon, rest = line.partition(": ")
    return f"{_(name)}: {rest}" if colon and name.replace(" ", "_").isidentifier() else line


def answer_source(answer: Callable) -> str:
    """The source of the notebook cell (or module) that defined `answer`, a function or a class.

    IPython keeps every cell's source in `linecache` under the file name its code objects carry,
    so the whole answer cell travels, helpers and all. A partial, a bound method or a decorated function
    is found by what it wraps, an object called as the answer by its class. A class is found by a method
    written in its own body, never by one it reuses from elsewhere (`record = LeakyService.record`), or
    else by the cell that has its `class` statement.
    """
    for _step in range(8):  # through partials, bound methods and decorators to what the cell wrote
        if isinstance(answer, functools.partial):
            answer = answer.func
        elif isinstance(answer, MethodType):
            answer = answer.__func__
        elif hasattr(answer, "__wrapped__"):
            answer = answer.__wrapped__
        else:
            break
    if not isinstance(answer, type | FunctionType) and isinstance(type(answer).__call__, FunctionType):
        answer = type(answer)  # an object called as the answer: the class that makes it callable
    code = getattr(answer, "__code__", None)
    if code is None and isinstance(answer, type):
        own = [f for value in vars(answer).values() for f in functions_behind(value)]
        own = [f for f in own if f.__qualname__.startswith(answer.__qualname__ + ".")]
        code = own[0].__code__ if own else None
    lines = linecache.getlines(code.co_filename) if code is not None else []
    if not lines and isinstance(answer, type):
        lines = _cell_with(re.compile(rf"^class\s+{re.escape(answer.__name__)}\b"))
    return "".join(lines) if lines else inspect.getsource(answer)


def _answer_name(scenario: str) -> str:
    """The name the scenario's task asks the answer cell to define ("" for a scenario not found: the
    run then says so)."""
    from .._errors import LeaklabError  # here: every grading kernel imports this module
    from ..scenarios import load

    try:
        return load(scenario).ANSWER
    except (LeaklabError, TypeError):
        return ""


def functions_behind(value: object) -> list[FunctionType]:
    """The Python functions behind a class attribute: a function, a static or class method, a property."""
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    if isinstance(value, property):
        return [f for f in (value.fget, value.fset, value.fdel) if isinstance(f, FunctionType)]
    return [value] if isinstance(value, FunctionType) else []


def _cell_with(line: re.Pattern[str]) -> list[str]:
    """The lines of the latest notebook cell (a `linecache` entry no file backs) with a matching line."""
    found: list[str] = []
    for name, entry in list(linecache.cache.items()):
        lines = entry[2] if len(entry) > 2 else []
        if not os.path.exists(name) and any(line.match(text) for text in lines):
            found = list(lines)
    return found


class AnswerRef:
    """A name an answer cell defines, known only by the cell's source: the grader's own run binds
    answer names to these, so the learner's code runs in `run_isolated`'s fresh process and nowhere else."""

    def __init__(self, source: str, name: str, *, tampered: str = "") -> None:
        self.source, self.__name__ = source, name
        self.tampered = tampered  # why its value could not be worked out: its run was caught tampering

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(f"{self.__name__} from the answer cell is only run by leaklab.run_isolated when verifying")

    def __repr__(self) -> str:
        return f"<answer {self.__name__}>"


_cache: dict[str, IsolatedRun] = {}


def run_isolated(
    handler: Callable | str | AnswerRef, *, scenario: str, function: str | None = None, **options: object
) -> IsolatedRun:
    """Run `scenario`'s grading burst against `handler` in a fresh interpreter.

    `handler` is the learner's function, or the source of an answer cell with `function` naming the
    handler in it. Runs are cached per source and options: several test cells share one run.
    """
    if isinstance(handler, AnswerRef):
        source, name = handler.source, function or handler.__name__
    elif callable(handler):  # looked up by the name the task gives it, not by its own `__name__`
        source, name = answer_source(handler), function or _answer_name(scenario) or handler.__name__
    else:
        source, name = handler, function or ""
    job = {"scenario": scenario, "source": source, "function": name, "options": options}
    key = handoff.run_key(job)
    if key not in _cache:
        known = handoff.published().get(key)
        _cache[key] = IsolatedRun(**known) if known else _spawn(job)
    return _cache[key]


def answer_values(
    setup: list[str], source: str, names: list[str], before: list[str] | None = None
) -> tuple[dict[str, object], str]:
    """The values an answer cell computes for `names` (`LEAK_LINE = inspect.getsourcelines(...)[1]`),
    found by running the lesson's set-up cells (and `before`, the learner's cells above the answer) and
    then the cell in a fresh interpreter, never in the grader's: those that are plain data (numbers,
    strings, None, and lists, tuples and dicts of them); and why the run failed, if it did (the cell
    raised, say), for a test that misses a name to say. A run caught tampering (reading the grader's own
    answer, say) gives each name an `AnswerRef` that says so."""
    job = {"kind": "values", "setup": setup, "source": source, "names": sorted(names)}
    if before:
        job["before"] = before
    key = handoff.run_key(job)
    if key not in _cache:
        _cache[key] = _spawn(job)
    run = _cache[key]
    if run.reason is Reason.TAMPERED:  # no value, and the test that reads one says why
        return {name: AnswerRef(source, name, tampered=run.error or "tampered") for name in names}, ""
    found = run.outcome.get("values", {}) if not run.error else {}
    return {name: from_plain(value) for name, value in found.items() if isinstance(value, dict)}, run.error or ""


def plain(value: object, depth: int = 0) -> dict | None:
    """`value` as JSON that keeps its type (a tuple stays a tuple), or None where it is not plain data."""
    if depth > 8:
        return None
    if value is None or type(value) in (str, int, float, bool):
        return {"value": value}
    if type(value) in (list, tuple):
        items = [plain(item, depth + 1) for item in value]  # type: ignore[attr-defined]
        return None if None in items else {type(value).__name__: items}
    if type(value) is dict and all(type(key) is str for key in value):  # type: ignore[union-attr]
        entries = {key: plain(item, depth + 1) for key, item in value.items()}  # type: ignore[union-attr]
        return None if None in entries.values() else {"dict": entries}
    return None


def from_plain(data: dict) -> object:
    if "list" in data or "tuple" in data:
        items = [from_plain(item) for item in data.get("list", data.get("tuple", []))]
        return tuple(items) if "tuple" in data else items
    if "dict" in data:
        return {key: from_plain(item) for key, item in data["dict"].items()}
    return data.get("value")


def measured_runs() -> dict[str, dict]:
    """Every run this process has made, by key, in the form the hand-off carries."""
    return {key: asdict(run) for key, run in _cache.items()}


def _spawn(job: dict) -> IsolatedRun:
    """Run the child to its end (or kill it at the time limit, with all it started), following it from
    outside (`watch`); its result, or what went wrong. A scenario with an answer key (`JudgedOutside`)
    sends the child its options without the key and judges what came back here."""
    job = _with_drawn_traffic(job)
    scenario = _judged_outside(job)
    if scenario is None:
        return _run_child(job)
    run = _run_child({**job, "options": scenario.sealed(**job["options"])})
    if run.error is None:
        run.outcome = scenario.judge(run.outcome, **job["options"])
    return run


def _run_child(job: dict) -> IsolatedRun:
    kernels_only = (handoff.ENV, handoff.PLOTS_ENV)  # what the grader tells a kernel, not the answer's run
    report_out, report_in = os.pipe()  # the child's messages
    ack_out, ack_in = os.pipe()  # the parent's answers: the child waits for one at each stop
    argv = sandbox.wrap(_CHILD, writable=[]) if sandbox.active() else _CHILD
    try:
        # A session of its own, so that everything the answer forks is killed with it. Its output goes to
        # pipes the parent drains and caps: nothing of a run is written to the grader's disk.
        child = subprocess.Popen(
            argv,
            # The messages the child writes (its problems, its leak report) in the kernel's language.
            env={**{k: v for k, v in os.environ.items() if k not in kernels_only}, LANGUAGE_ENV: language()},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(report_in, ack_out),
            start_new_session=True,
        )
    finally:
        os.close(report_in)
        os.close(ack_out)
    try:
        with contextlib.suppress(BrokenPipeError):
            child.stdin.write(json.dumps({**job, "report": report_in, "acks": ack_out}).encode())  # type: ignore[union-attr]
            child.stdin.close()  # type: ignore[union-attr]
        return _follow(child, report_out, ack_in, counts=job.get("kind") != "values")
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)  # the child, and whatever it started and left
        child.wait()
        for stream in (child.stdout, child.stderr):
            stream.close()  # type: ignore[union-attr]
        os.close(report_out)
        os.close(ack_in)


def _judged_outside(job: dict) -> JudgedOutside | None:
    if job.get("kind") == "values":
        return None
    from .._errors import LeaklabError  # here: every grading kernel imports this module
    from ..scenarios import JudgedOutside, load

    try:
        scenario = load(job["scenario"])
    except LeaklabError:
        return None  # the child says there is no such scenario
    return scenario if isinstance(scenario, JudgedOutside) else None


def _with_drawn_traffic(job: dict) -> dict:
    """A job whose test cell asked for `traffic="generated"`, with the traffic drawn here, in the grader's
    process (the answer never runs where Hypothesis does), seeded by the run's key: the same answer is
    always graded on the same burst, and no one burst fits every answer."""
    options = job.get("options", {})
    if options.get("traffic") != "generated":
        return job
    from .._errors import LeaklabError  # here: every grading kernel imports this module, few draw
    from ..scenarios import DrawsTraffic, _traffic, load

    try:
        scenario = load(job["scenario"])
    except LeaklabError:
        return job  # the child says there is no such scenario
    if not isinstance(scenario, DrawsTraffic):
        return job  # the probe refuses the option, and the run says so
    rest = {name: value for name, value in options.items() if name != "traffic"}
    return {**job, "options": _traffic.drawn(job["scenario"], int(handoff.run_key(job)[:16], 16), rest)}


def _follow(child: subprocess.Popen, report: int, acks: int, *, counts: bool) -> IsolatedRun:
    """Read the child's messages and output until its result, its end, or the time limit."""
    deadline = time.monotonic() + _timeout_s()
    listener = _Listener(watch.Watch(child.pid, counts=counts), acks)
    streams = {report: "report", child.stdout.fileno(): "stdout", child.stderr.fileno(): "stderr"}  # type: ignore[union-attr]
    with selectors.DefaultSelector() as selector:
        for fd, name in streams.items():
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ, name)
        while report in selector.get_map():  # until the child's channel closes: it ended without a result
            left = deadline - time.monotonic()
            if left <= 0:
                return _timed_out(child, selector)
            for key, _events in selector.select(left):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fd)
                elif (ended := listener.take(key.data, chunk)) is not None:
                    return ended
    return _no_result(child, listener.tail, deadline)


def _timed_out(child: subprocess.Popen, selector: selectors.BaseSelector) -> IsolatedRun:
    """A run past its time limit, with the stacks of every thread it had, grouped as a leak report groups
    them: the child's faulthandler writes them to its stderr on SIGUSR1 (registered in `child.main`),
    which works even while a thread holds the interpreter in a loop that never yields."""
    message = f"the handler's run did not end within {_timeout_s():.0f} s and was stopped"
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGUSR1)
    dumped, until = b"", time.monotonic() + 2.0
    while (left := until - time.monotonic()) > 0 and len(dumped) < 1 << 20:
        ready = selector.select(min(left, 0.2))
        if not ready and dumped:  # it has written its stacks and gone quiet
            break
        for key, _events in ready:
            chunk = os.read(key.fd, 1 << 16)
            if not chunk:
                selector.unregister(key.fd)
            elif key.data == "stderr":
                dumped += chunk
    stacks = _grouped_thread_stacks(dumped.decode(errors="replace"))
    return IsolatedRun(error=message + (f"; where it was stuck:\n{stacks}" if stacks else ""), reason=Reason.TIMEOUT)


_OWN_FILES = str(Path(__file__).resolve().parents[1])  # leaklab's package
_THREAD_HEADER = re.compile(r"^(?:Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):\n", re.M)


def _grouped_thread_stacks(dump: str, *, top: int = 5) -> str:
    """faulthandler's `Thread 0x... (most recent call first):` blocks, identical stacks counted together,
    the most common first (the innermost frame first, as faulthandler writes them)."""
    from .._stacks import counted

    stacks: Counter[tuple[str, ...]] = Counter()
    for block in _THREAD_HEADER.split(dump)[1:]:
        frames = tuple(
            line.strip()
            for line in block.splitlines()
            if line.startswith("  File ") and _OWN_FILES not in line and "<string>" not in line
        )  # the grader's own frames say nothing about the answer
        stacks[frames] += 1
    groups = [
        f"{counted(n, 'thread')}:\n" + "\n".join(f"  {frame}" for frame in frames)
        for frames, n in stacks.most_common(top)
    ]
    return "\n".join(groups)


class _Listener:
    """What the parent makes of the child's streams: its messages, each answered once `watch` has looked,
    and its output, counted against the limit (the last of stderr kept, to say why a run failed)."""

    def __init__(self, observer: watch.Watch, acks: int) -> None:
        self.observer, self.acks = observer, acks
        self.said, self.printed, self.tail = b"", 0, b""

    def take(self, stream: str, chunk: bytes) -> IsolatedRun | None:
        """The run's end, if this chunk brought it."""
        if stream != "report":
            self.printed += len(chunk)
            self.tail = (self.tail + chunk)[-4000:] if stream == "stderr" else self.tail
            if self.printed <= settings.RUN_OUTPUT_BYTES:
                return None
            message = f"the answer printed more than {settings.RUN_OUTPUT_BYTES >> 20} MiB and was stopped"
            return IsolatedRun(error=message, reason=Reason.OUTPUT_LIMIT)
        self.said += chunk
        if len(self.said) > watch.MESSAGE_BYTES:
            return _tampered("the run said more to the grader than a run can")
        while b"\n" in self.said:
            line, _, self.said = self.said.partition(b"\n")
            try:
                ended = self.observer.receive(line)
            except watch.Tampered as exc:
                return _tampered(str(exc))
            if ended is not None:
                return _from_report(ended)
            with contextlib.suppress(BrokenPipeError):  # a child that is gone: its channel says so next
                os.write(self.acks, b".")
        return None


def _tampered(message: str) -> IsolatedRun:
    return IsolatedRun(error=f"tampered: {message}", reason=Reason.TAMPERED)


def _from_report(report: dict) -> IsolatedRun:
    """The run the child reported, its fields checked for their types (the answer could have written it)."""
    try:
        run = IsolatedRun(**report)
    except (TypeError, ValueError):
        return _tampered("the run's result was not the grader's own form")
    numbers = (
        run.leftover_tasks,
        run.leftover_threads,
        run.leftover_files,
        run.leftover_processes,
        run.closed_by_finaliser,
        run.died_unseen,
        run.retained_bytes_per_request,
    )
    kinds = [(run.outcome, dict), (run.leak_report, str), (run.error, (str, type(None)))]
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers) or not all(
        isinstance(value, kind) for value, kind in kinds
    ):
        return _tampered("the run's result was not the grader's own form")
    return run


def _no_result(child: subprocess.Popen, tail: bytes, deadline: float) -> IsolatedRun:
    """A child that closed its channel without a result: why, from its exit and its last words."""
    try:
        code = child.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        message = f"the handler's run did not end within {_timeout_s():.0f} s and was stopped"
        return IsolatedRun(error=message, reason=Reason.TIMEOUT)
    if code == -signal.SIGXFSZ:
        limit = settings.RUN_OUTPUT_BYTES >> 20
        return IsolatedRun(
            error=f"the answer wrote a file over {limit} MiB and was stopped", reason=Reason.OUTPUT_LIMIT
        )
    last = " | ".join(tail.decode(errors="replace").strip().splitlines()[-3:]) or f"exit code {code}"
    return IsolatedRun(error=f"the handler's run ended without a result: {last}", reason=Reason.ANSWER_FAILED)
