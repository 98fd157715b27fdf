"""Run a learner's handler in a fresh process and measure what it leaves behind.

A notebook's kernel is the learner's: it may have leaked tasks from the lesson's demos, and an answer
cell may rebind `asyncio.all_tasks`, `threading.enumerate` or a builtin. So the grader re-runs the
answer cell's source in a new interpreter, whose measuring tools were taken before that code ran:
threads are counted by the operating system (`/proc/self/task`, so grading needs Linux), tasks by a
task factory and asyncio's own registry, memory by `tracemalloc` (bytes retained per request, a
count, not a clock). A task is leaked when the loop has gone quiet (nothing scheduled, nothing ready,
no socket or thread that could wake it) and the task is still pending: no waiting on wall-clock luck.
Only a loop that never goes quiet (a timer that keeps firing) is judged after a budget of seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import linecache
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

_TIMEOUT_S = 25.0  # more than the child's own budgets (see below), well under a cell's timeout
TIMEOUT_ENV = "LEAKLAB_RUN_TIMEOUT"  # the class grader's shorter limit, in seconds


def _timeout_s() -> float:
    try:
        return max(11.0, float(os.environ.get(TIMEOUT_ENV, _TIMEOUT_S)))  # never under the child's budgets
    except ValueError:
        return _TIMEOUT_S


_cache: dict[str, IsolatedRun] = {}


@dataclass
class IsolatedRun:
    """What a handler did in a fresh process: the scenario's outcome and what it left behind."""

    outcome: dict = field(default_factory=dict)
    leftover_tasks: int = 0
    leftover_threads: int = 0
    leftover_files: int = 0  # sockets and files left open, counted by the operating system
    destroyed_pending: int = 0  # tasks the garbage collector destroyed while still pending
    retained_bytes_per_request: float = 0.0
    leak_report: str = ""
    error: str | None = None

    def explain(self) -> str:
        """A few lines for an assertion message: the error, or the problems the scenario found."""
        if self.error:
            return self.error
        problems = self.outcome.get("problems", [])[:3]
        return "\n".join(problems) if problems else "no problem found"

    def require(self, *properties: str) -> None:
        """Fail unless the run worked and every request it counts passed each named property.

        The properties are the scenario's `[passed, out of]` counts, such as "completed_with_result";
        a scenario that sends requests also reports how many it sent and how many got an answer, and
        may name what a property counts (`"units": {"week_flat": "checks"}`) where it is not requests.
        """
        if self.error:
            raise AssertionError(self.error)
        unanswered = self.outcome.get("requests", 0) - self.outcome.get("answered", 0)
        if unanswered:
            raise AssertionError(f"{unanswered} requests never got an answer; where they wait:\n{self.leak_report}")
        unit = "requests" if "requests" in self.outcome else "checks"
        for name in properties:
            if name not in self.outcome:  # the run stopped before this property was checked
                label = name.replace("_", " ")
                raise AssertionError(f"{label}: never checked: the burst did not finish (a call that never returns?)")
            passed, total = self.outcome[name]
            if passed < total:
                label = name.replace("_", " ")
                own = [p for p in self.outcome.get("problems", []) if p.startswith(label + ":")]
                detail = "\n".join(own[:3]) if own else self.explain()
                counted = self.outcome.get("units", {}).get(name, unit)
                raise AssertionError(f"{label}: {passed} of {total} {counted}\n{detail}")

    def require_no_leftovers(self) -> None:
        """Fail unless no task, thread or open socket outlived the burst and no task was destroyed pending."""
        if self.error:  # a run that failed shows nothing about leftovers
            raise AssertionError(self.error)
        if self.leftover_tasks or self.leftover_threads:
            raise AssertionError(f"left behind after the burst:\n{self.leak_report}")
        if self.leftover_files:
            raise AssertionError(f"{self.leftover_files} sockets or files were left open after the burst")
        if self.destroyed_pending:
            raise AssertionError(
                f"{self.destroyed_pending} tasks were destroyed by the garbage collector while still pending"
            )

    def require_retained_below(self, limit_bytes: int) -> None:
        """Fail unless the memory still held after the burst is under `limit_bytes` per request."""
        if self.error:
            raise AssertionError(self.error)
        held = self.retained_bytes_per_request
        if held >= limit_bytes:
            raise AssertionError(
                f"{held / 1024:.1f} KiB per request is still held after the burst (limit {limit_bytes / 1024:g} KiB)"
            )


def answer_source(answer: Callable) -> str:
    """The source of the notebook cell (or module) that defined `answer`, a function or a class.

    IPython keeps every cell's source in `linecache` under the file name its code objects carry,
    so the whole answer cell travels, helpers and all.
    """
    code = getattr(answer, "__code__", None)
    if code is None and isinstance(answer, type):  # a class: its methods' code knows the cell
        code = next((f.__code__ for f in vars(answer).values() if hasattr(f, "__code__")), None)
    lines = linecache.getlines(code.co_filename) if code is not None else []
    return "".join(lines) if lines else inspect.getsource(answer)


class AnswerRef:
    """A name an answer cell defines, known only by the cell's source: the class-grading verifier binds
    answer names to these, so the learner's code runs in `run_isolated`'s fresh process and nowhere else."""

    def __init__(self, source: str, name: str) -> None:
        self.source, self.__name__ = source, name

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(f"{self.__name__} from the answer cell is only run by leaklab.run_isolated when verifying")

    def __repr__(self) -> str:
        return f"<answer {self.__name__}>"


# Set by the class grader for the kernel that runs a submission: the verdicts it has already measured
# outside that kernel, by run key, so the kernel shows the same results without running them again.
VERDICTS_ENV = "LEAKLAB_VERDICTS"


def run_key(job: dict) -> str:
    """A run's cache key; blank lines around the source do not count (IPython drops leading ones)."""
    return hashlib.sha256(json.dumps({**job, "source": job["source"].strip()}, sort_keys=True).encode()).hexdigest()


def _known_verdicts() -> dict[str, dict]:
    path = os.environ.get(VERDICTS_ENV)
    if not path:
        return {}
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def run_isolated(
    handler: Callable | str | AnswerRef, *, scenario: str, function: str | None = None, **options: object
) -> IsolatedRun:
    """Run `scenario`'s grading burst against `handler` in a fresh interpreter.

    `handler` is the learner's function, or the source of an answer cell with `function` naming the
    handler in it. Runs are cached per source and options: several test cells share one run.
    """
    if isinstance(handler, AnswerRef):
        source, name = handler.source, function or handler.__name__
    elif callable(handler):
        source, name = answer_source(handler), function or handler.__name__
    else:
        source, name = handler, function or ""
    job = {"scenario": scenario, "source": source, "function": name, "options": options}
    key = run_key(job)
    if key not in _cache:
        known = _known_verdicts().get(key)
        _cache[key] = IsolatedRun(**known) if known else _spawn(job)
    return _cache[key]


def measured_runs() -> dict[str, dict]:
    """Every run this process has made, by key, in the form `LEAKLAB_VERDICTS` files hold."""
    return {key: asdict(run) for key, run in _cache.items()}


def publish_runs(path: Path, *, after: threading.Event | None = None) -> None:
    """Write every run this process has made where a kernel told `LEAKLAB_VERDICTS=path` looks for them:
    whole or not at all; with `after`, once that event is set (the grader's own run is over)."""
    if after is not None:
        after.wait()
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(measured_runs()), encoding="utf-8")
    partial.replace(path)


def _spawn(job: dict) -> IsolatedRun:
    with tempfile.TemporaryDirectory(prefix="leaklab-run-") as folder:
        # The result's file name is drawn here and reaches the child on stdin, never on its command
        # line: an answer cannot write a result of its own where the parent will look for one.
        result_path = Path(folder) / f"{secrets.token_hex(16)}.json"
        errors = Path(folder) / "stderr.txt"
        with errors.open("w+b") as stderr, tempfile.TemporaryFile(dir=folder) as stdout:
            # A session of its own, so that everything the answer forks is killed with it; its output
            # goes to files (a child it leaves behind cannot hold a pipe open), under a size limit.
            child = subprocess.Popen(
                [sys.executable, "-m", "leaklab._isolation"],
                env={name: value for name, value in os.environ.items() if name != VERDICTS_ENV},
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                child.stdin.write(json.dumps({**job, "result": str(result_path)}).encode())  # type: ignore[union-attr]
                child.stdin.close()  # type: ignore[union-attr]
            except BrokenPipeError:
                pass
            try:
                code = child.wait(timeout=_timeout_s())
            except subprocess.TimeoutExpired:
                code = None
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)  # the child, and whatever it started and left
                child.wait()
            if code is None:
                return IsolatedRun(error=f"the handler's run did not end within {_timeout_s():.0f} s and was stopped")
            if not result_path.exists():
                if code == -signal.SIGXFSZ:
                    return IsolatedRun(error=f"the answer printed more than {_OUTPUT_LIMIT >> 20} MiB and was stopped")
                stderr.seek(0)
                tail = stderr.read()[-4000:].decode(errors="replace")
                tail = " | ".join(tail.strip().splitlines()[-3:]) or f"exit code {code}"
                return IsolatedRun(error=f"the handler's run ended without a result: {tail}")
            return IsolatedRun(**json.loads(result_path.read_text(encoding="utf-8")))


# What a run may print (or write to any one file): an answer prints a few lines. Past it, the operating
# system stops the child (SIGXFSZ).
_OUTPUT_LIMIT = 64 * 2**20


# --- the child's side ---------------------------------------------------------------------------------

# Budgets, in seconds, for a loop that never goes quiet (a timer that keeps firing, a thread that never
# ends): the warm-up, the burst, and the whole run as the parent sees it. The last is well under the
# per-cell timeout of grader/nbgrader_config.py, even for a test cell that makes two runs.
_WARM_UP_BUDGET_S, _BURST_BUDGET_S = 2.0, 8.0


def _child() -> None:
    import asyncio
    import asyncio.base_events
    import asyncio.events
    import asyncio.futures
    import builtins
    import gc
    import threading
    import time
    import tracemalloc

    from ._census import registered_tasks, task_registries
    from ._stacks import format_groups, group_stacks

    job = json.loads(sys.stdin.read())
    result_path = job.pop("result")  # on stdin, not on the command line an answer can read
    resource.setrlimit(resource.RLIMIT_FSIZE, (_OUTPUT_LIMIT, _OUTPUT_LIMIT))

    # Everything that measures is bound here, before the answer runs; and the modules an answer might
    # rebind (a builtin, `asyncio.all_tasks`, `threading.enumerate`, ...) are put back as they were
    # before anything is measured.
    guarded = (builtins, asyncio, asyncio.tasks, asyncio.events, asyncio.base_events, asyncio.futures, threading)
    guarded += (gc, time, tracemalloc, json, os)
    saved = [(module.__dict__, dict(module.__dict__)) for module in guarded]
    registries, Task = task_registries(), asyncio.Task
    listdir, replace, leave, monotonic = os.listdir, os.replace, os._exit, time.monotonic
    pause_collector, resume_collector = gc.disable, gc.enable
    collect, traced_memory, trace, tracing = (
        gc.collect,
        tracemalloc.get_traced_memory,
        tracemalloc.start,
        tracemalloc.is_tracing,
    )

    classes: list[tuple[type, dict]] = []

    def restore_modules() -> None:
        for namespace, original in saved:
            for name in [name for name in namespace if name not in original]:
                del namespace[name]
            namespace.update(original)
        for cls, original in classes:
            for name in [name for name in vars(cls) if name not in original]:
                delattr(cls, name)
            for name, value in original.items():
                if vars(cls).get(name) is not value:
                    setattr(cls, name, value)

    def finish(run: IsolatedRun) -> None:
        restore_modules()
        with open(result_path + ".part", "w", encoding="utf-8") as results:
            results.write(json.dumps(asdict(run)))
        replace(result_path + ".part", result_path)  # all of it or nothing: a crash leaves no half result
        leave(0)  # a leaked non-daemon thread must not keep this process alive

    def os_threads() -> int:
        return len(listdir("/proc/self/task"))

    def open_files() -> int:
        return len(listdir("/proc/self/fd"))

    # Every task the run creates, held strongly by a task factory; with the registry as a second witness.
    created: list[asyncio.Task] = []

    def tracked(loop: asyncio.AbstractEventLoop, coro: object, **options: object) -> asyncio.Task:
        task = Task(coro, loop=loop, **options)  # type: ignore[arg-type]
        created.append(task)
        return task

    def pending(loop: asyncio.AbstractEventLoop) -> set[asyncio.Task]:
        candidates = {*created, *registered_tasks(registries)}
        return {t for t in candidates if t.get_loop() is loop and not t.done()}

    def nothing_can_wake(loop: asyncio.AbstractEventLoop, threads: int, burst_over: bool) -> bool:
        # No public API tells that every task is stuck for good; these private fields of the selector
        # event loop do: nothing ready to run, no timer, and, while the burst runs, no socket but the
        # loop's own wake-up pipe and no extra thread that could call back into the loop. Once the
        # burst is over, sockets still waiting and threads still running are the answer's leftovers.
        return (
            not loop._ready  # type: ignore[attr-defined]
            and all(h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]
            and (burst_over or (len(loop._selector.get_map()) <= 1 and os_threads() <= threads))  # type: ignore[attr-defined]
        )

    def run_until_quiet(loop: asyncio.AbstractEventLoop, threads: int, budget_s: float, burst: asyncio.Task) -> None:
        deadline = monotonic() + budget_s

        def check() -> None:
            if nothing_can_wake(loop, threads, burst.done()) or monotonic() > deadline:
                loop.stop()
            else:
                loop.call_later(0.002, check)

        loop.call_soon(check)
        loop.run_forever()

    try:
        scenario = importlib.import_module(f"leaklab.scenarios.{job['scenario']}")
    except ImportError:
        finish(IsolatedRun(error=f"no scenario named {job['scenario']!r}"))
    # leaklab's own modules (the scenario, the checks it runs) and their classes are put back as well: an
    # answer cell that rebinds `Checks.record` at its top level has that undone before anything is checked.
    ours = [m for name, m in list(sys.modules.items()) if name.partition(".")[0] == "leaklab" and m is not None]
    saved.extend((module.__dict__, dict(module.__dict__)) for module in ours)
    found = {id(c): c for m in ours for c in vars(m).values() if isinstance(c, type) and c.__module__ == m.__name__}
    classes.extend((cls, dict(vars(cls))) for cls in found.values())
    namespace = {"__name__": "__answer__", "asyncio": asyncio}
    namespace.update({name: getattr(scenario, name) for name in scenario.__all__})
    threads_before = os_threads()
    try:
        exec(compile(job["source"], "<answer cell>", "exec"), namespace)
    except BaseException as exc:
        finish(IsolatedRun(error=f"the answer cell raised {type(exc).__name__}: {exc}"))
    restore_modules()  # what the cell rebound at its top level is undone before the burst starts
    handler = namespace.get(job["function"])
    if not callable(handler):
        finish(IsolatedRun(error=f"the answer cell does not define {job['function']!r}"))

    loop = asyncio.new_event_loop()
    loop.set_task_factory(tracked)
    destroyed: list[dict] = []
    loop.set_exception_handler(lambda _, context: destroyed.append(context))
    asyncio.set_event_loop(loop)
    files_before = open_files()  # the loop's own selector and wake-up pipe are in the count

    def run_burst(burst: Awaitable[object], budget_s: float) -> asyncio.Task:
        async def burst_then_idle_threads_gone() -> object:
            # A default executor of the run's own, shut down after the burst: its idle workers would
            # otherwise count as leaked threads (and keep the loop from going quiet).
            executor = ThreadPoolExecutor(thread_name_prefix="default-executor")
            loop.set_default_executor(executor)
            try:
                return await burst
            finally:
                executor.shutdown(wait=False)  # idle workers end; one stuck in a call is a leftover

        task = loop.create_task(burst_then_idle_threads_gone())
        run_until_quiet(loop, threads_before, budget_s, task)
        return task

    if hasattr(scenario, "warm_up"):  # first-use allocations are not retained memory
        run_burst(scenario.warm_up(handler), _WARM_UP_BUDGET_S)
    left_by_warm_up = pending(loop)
    collect()
    trace()
    memory_before = traced_memory()[0]

    # The cyclic garbage collector stays off during the burst: what counts is what the answer released
    # itself (a socket it closed), not what a collection would have found by luck at some moment.
    pause_collector()
    main, summary = scenario.probe(handler, **job["options"])
    main_task = run_burst(main, _BURST_BUDGET_S)
    files_left = max(0, open_files() - files_before)
    resume_collector()
    restore_modules()
    if main_task.done() and not main_task.cancelled() and main_task.exception() is not None:
        finish(IsolatedRun(error=f"the burst failed: {main_task.exception()!r}"))
    if not tracing():
        finish(IsolatedRun(error="the answer stopped tracemalloc, so its memory cannot be measured"))
    leftovers = [t for t in pending(loop) - left_by_warm_up if t is not main_task]
    outcome = summary()
    main = main_task = summary = None  # the burst's own records must not count as retained memory
    created.clear()
    collect()
    retained = (traced_memory()[0] - memory_before) / max(1, outcome.get("requests", 1))
    for _ in range(10):  # threads that are ending get a moment; leaked ones stay
        if os_threads() <= threads_before:
            break
        time.sleep(0.05)
    extra_threads = [t for t in threading.enumerate() if t is not threading.main_thread()]
    kept_destroyed = [c for c in destroyed if "destroyed but it is pending" in str(c.get("message", ""))]
    finish(
        IsolatedRun(
            outcome=outcome,
            leftover_tasks=len(leftovers),
            leftover_threads=max(0, os_threads() - threads_before),
            leftover_files=files_left,
            destroyed_pending=len(kept_destroyed),
            retained_bytes_per_request=retained,
            leak_report=format_groups(group_stacks(leftovers, extra_threads)),
        )
    )


if __name__ == "__main__":
    _child()
