"""Run a learner's handler in a fresh process and measure what it leaves behind.

A notebook's kernel is the learner's: it may have leaked tasks from the lesson's demos, and an answer
cell may rebind `asyncio.all_tasks`, `threading.enumerate` or a builtin. So the grader re-runs the
answer cell's source in a new interpreter, whose measuring tools were taken before that code ran:
threads are counted by the operating system (`/proc/self/task`), tasks from the registry that the
C implementation of asyncio fills in, memory by `tracemalloc` (bytes retained per request, a count,
not a clock). A task is leaked when the loop has gone quiet (nothing scheduled, nothing ready, no
socket or thread that could wake it) and the task is still pending: no waiting on wall-clock luck.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import linecache
import os
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

_TIMEOUT_S = 120.0
_cache: dict[str, IsolatedRun] = {}


@dataclass
class IsolatedRun:
    """What a handler did in a fresh process: the scenario's outcome and what it left behind."""

    outcome: dict = field(default_factory=dict)
    leftover_tasks: int = 0
    leftover_threads: int = 0
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

        The properties are the scenario's `[passed, out of]` counts, such as "completed_with_result".
        """
        if self.error:
            raise AssertionError(self.error)
        unanswered = self.outcome["requests"] - self.outcome["answered"]
        if unanswered:
            raise AssertionError(f"{unanswered} requests never got an answer; where they wait:\n{self.leak_report}")
        for name in properties:
            passed, total = self.outcome[name]
            if passed < total:
                raise AssertionError(f"{name.replace('_', ' ')}: {passed} of {total} requests\n{self.explain()}")

    def require_no_leftovers(self) -> None:
        """Fail unless no task or thread outlived the burst and none was destroyed while pending."""
        if self.leftover_tasks or self.leftover_threads:
            raise AssertionError(f"left behind after the burst:\n{self.leak_report}")
        if self.destroyed_pending:
            raise AssertionError(
                f"{self.destroyed_pending} tasks were destroyed by the garbage collector while still pending"
            )

    def require_retained_below(self, limit_bytes: int) -> None:
        """Fail unless the memory still held after the burst is under `limit_bytes` per request."""
        held = self.retained_bytes_per_request
        if held >= limit_bytes:
            raise AssertionError(
                f"{held / 1024:.1f} KiB per request is still held after the burst (limit {limit_bytes / 1024:g} KiB)"
            )


def answer_source(function: Callable) -> str:
    """The source of the notebook cell (or module) that defined `function`.

    IPython keeps every cell's source in `linecache` under the file name its code objects carry,
    so the whole answer cell travels, helpers and all.
    """
    lines = linecache.getlines(function.__code__.co_filename)
    return "".join(lines) if lines else inspect.getsource(function)


def run_isolated(
    handler: Callable | str, *, scenario: str, function: str | None = None, **options: object
) -> IsolatedRun:
    """Run `scenario`'s grading burst against `handler` in a fresh interpreter.

    `handler` is the learner's function, or the source of an answer cell with `function` naming the
    handler in it. Runs are cached per source and options: several test cells share one run.
    """
    if callable(handler):
        source, name = answer_source(handler), function or handler.__name__
    else:
        source, name = handler, function or ""
    job = {"scenario": scenario, "source": source, "function": name, "options": options}
    key = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()
    if key not in _cache:
        _cache[key] = _spawn(job)
    return _cache[key]


def _spawn(job: dict) -> IsolatedRun:
    with tempfile.TemporaryDirectory(prefix="leaklab-run-") as folder:
        result_path = Path(folder) / "result.json"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "leaklab._isolation", str(result_path)],
                input=json.dumps(job),
                stdout=subprocess.DEVNULL,  # the answer's own prints are not wanted here
                stderr=subprocess.PIPE,
                text=True,
                timeout=_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return IsolatedRun(error=f"the handler's run did not end within {_TIMEOUT_S:.0f} s and was stopped")
        if not result_path.exists():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:]) or f"exit code {done.returncode}"
            return IsolatedRun(error=f"the handler's run ended without a result: {tail}")
        return IsolatedRun(**json.loads(result_path.read_text()))


# --- the child's side ---------------------------------------------------------------------------------


def _child(result_path: str) -> None:
    # Everything that measures is bound here, before the learner's code can rebind anything.
    import asyncio
    import gc
    import threading
    import time
    import tracemalloc

    from ._stacks import format_groups, group_stacks

    listdir, collect, monotonic, dumps, leave = os.listdir, gc.collect, time.monotonic, json.dumps, os._exit
    results = open(result_path, "w", encoding="utf-8")  # closed by finish(), which never returns
    traced_memory, trace, registry = tracemalloc.get_traced_memory, tracemalloc.start, list(_task_registry())

    def os_threads() -> int:
        return len(listdir("/proc/self/task"))

    def pending(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task]:
        return [t for t in list(registry[0]) if t.get_loop() is loop and not t.done()]

    def nothing_can_wake(loop: asyncio.AbstractEventLoop, threads: int) -> bool:
        # No public API tells that every task is stuck for good; these private fields of the selector
        # event loop do: nothing ready to run, no timer, no socket but the loop's own wake-up pipe,
        # and no thread of ours that could call back into the loop.
        return (
            not loop._ready  # type: ignore[attr-defined]
            and all(h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]
            and len(loop._selector.get_map()) <= 1  # type: ignore[attr-defined]
            and os_threads() <= threads
        )

    def run_until_quiet(loop: asyncio.AbstractEventLoop, threads: int, budget_s: float) -> None:
        deadline = monotonic() + budget_s

        def check() -> None:
            if nothing_can_wake(loop, threads) or monotonic() > deadline:
                loop.stop()
            else:
                loop.call_later(0.002, check)

        loop.call_soon(check)
        loop.run_forever()

    def finish(run: IsolatedRun) -> None:
        results.write(dumps(asdict(run)))
        results.close()
        leave(0)  # a leaked non-daemon thread must not keep this process alive

    job = json.loads(sys.stdin.read())
    scenario = importlib.import_module(f"leaklab.scenarios.{job['scenario']}")
    namespace = {"__name__": "__answer__", "asyncio": asyncio}
    namespace.update({name: getattr(scenario, name) for name in scenario.__all__})
    threads_before = os_threads()
    try:
        exec(compile(job["source"], "<answer cell>", "exec"), namespace)
    except BaseException as exc:
        finish(IsolatedRun(error=f"the answer cell raised {type(exc).__name__}: {exc}"))
    handler = namespace.get(job["function"])
    if not callable(handler):
        finish(IsolatedRun(error=f"the answer cell does not define {job['function']!r}"))

    loop = asyncio.new_event_loop()
    destroyed: list[dict] = []
    loop.set_exception_handler(lambda _, context: destroyed.append(context))
    asyncio.set_event_loop(loop)

    def run_burst(burst: Awaitable[object], budget_s: float) -> asyncio.Task:
        task = loop.create_task(burst)
        run_until_quiet(loop, threads_before, budget_s)
        return task

    run_burst(scenario.probe(handler, requests=2, give_up_every=10**9)[0], budget_s=5.0)  # warm caches up
    collect()
    trace()
    memory_before = traced_memory()[0]

    main, summary = scenario.probe(handler, **job["options"])
    main_task = run_burst(main, budget_s=10.0)
    if main_task.done() and not main_task.cancelled() and main_task.exception() is not None:
        finish(IsolatedRun(error=f"the burst failed: {main_task.exception()!r}"))
    leftovers = [t for t in pending(loop) if t is not main_task]
    outcome = summary()
    main = main_task = summary = None  # the burst's own records must not count as retained memory
    collect()
    retained = (traced_memory()[0] - memory_before) / max(1, outcome["requests"])
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
            destroyed_pending=len(kept_destroyed),
            retained_bytes_per_request=retained,
            leak_report=format_groups(group_stacks(leftovers, extra_threads)),
        )
    )


def _task_registry() -> tuple[object]:
    """The weak set in which asyncio registers every task (the C tasks too), in a one-item tuple."""
    import asyncio.tasks

    registry = getattr(asyncio.tasks, "_scheduled_tasks", None) or asyncio.tasks._all_tasks  # type: ignore[attr-defined]
    return (registry,)


if __name__ == "__main__":
    _child(sys.argv[1])
