"""The fresh interpreter of an isolated run (the child's side of `isolation`).

Its measuring tools are bound before the answer's code runs, and what the answer may rebind is put back
before anything is measured (`Guard`). Threads are counted by the operating system (`/proc/self/task`,
so grading needs Linux), tasks by a task factory and asyncio's own registry (`Tasks`), memory by
`tracemalloc` (bytes retained per request, a count, not a clock). A task is leaked when the loop has
gone quiet (nothing scheduled, nothing ready, no socket or thread that could wake it) and the task is
still pending: no waiting on wall-clock luck. Only a loop that never goes quiet (a timer that keeps
firing) is judged after a budget of seconds; a scenario may name its own moment instead, the end of its
burst (`LEFTOVERS_AT_BURST_END`). Open files are counted before the collector runs (a socket only a cycle
holds is lesson 03's leak), unless the scenario counts them after (`FILES_AFTER_COLLECTION`).

Started by `isolation` only; it reads one job as JSON on stdin and talks to its parent over two pipes
the parent opened (`Channel`): it stops at each stage until the parent, which looks at this process
from outside (`watch`), says go on, and ends by sending its result.
"""

from __future__ import annotations

import ast
import asyncio
import asyncio.base_events
import asyncio.events
import asyncio.futures
import builtins
import contextlib
import faulthandler
import gc
import importlib.util
import inspect
import json
import json.encoder
import os
import re
import resource
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from importlib.machinery import ModuleSpec
from types import AsyncGeneratorType, CoroutineType, FunctionType, ModuleType

from .. import _i18n
from .._census import registered_tasks, task_done, task_loop, task_registries
from .._errors import LeaklabError, described
from .._repo import ARTEFACTS_ENV
from .._stacks import counted, format_groups, group_stacks, in_library, unregistered_threads
from ..scenarios import Scenario, WarmsUp, _truth, answer_namespace, judged_together, load
from . import settings
from .isolation import IsolatedRun, functions_behind, plain
from .results import Reason, reason_of

# Bound now, before any answer runs: what the child measures and ends with.
_listdir, _write, _read, _leave, _monotonic = os.listdir, os.write, os.read, os._exit, time.monotonic
_len = len
_Encoder, _getpid = json.encoder.JSONEncoder, os.getpid  # a fresh encoder each time: no instance to patch
_collect, _traced_memory, _all_objects = gc.collect, tracemalloc.get_traced_memory, gc.get_objects
_traceback_of = tracemalloc.get_object_traceback
_trace, _tracing = tracemalloc.start, tracemalloc.is_tracing
_pause_collector, _resume_collector = gc.disable, gc.enable
_Task = asyncio.Task
try:
    from _asyncio import Task as _CTask
except ImportError:  # an interpreter without the C accelerator
    _CTask = None
_GUARDED = (builtins, asyncio, asyncio.tasks, asyncio.events, asyncio.base_events, asyncio.futures, threading)
_GUARDED += (gc, time, tracemalloc, json, json.encoder, os)


def os_threads() -> int:
    return _len(_listdir("/proc/self/task"))


def open_files() -> int:
    return _len(_listdir("/proc/self/fd"))


def _defined_in(value: object, module: ModuleType) -> bool:
    return isinstance(value, type) and value.__module__ == module.__name__


class Guard:
    """The modules an answer might change (a builtin, `asyncio.all_tasks`, `threading.enumerate`, leaklab's
    own checks and their classes), saved as they were, and put back before anything is measured.

    Names rebound in a module are put back quietly (a learner may set a module's attribute for a reason);
    a method replaced on one of their classes, a function's code or defaults changed in place, or a
    function or class of leaklab's own modules rebound (the checks look those up as they run) never
    happens in an honest answer: `restore` puts it back and says what was changed.
    """

    def __init__(self, modules: tuple[ModuleType, ...]) -> None:
        self.saved: list[tuple[dict, dict]] = []
        self.own: set[int] = set()  # ids of leaklab's module namespaces among `saved`
        self.classes: list[tuple[type, dict]] = []
        self.functions: dict[int, tuple[FunctionType, tuple]] = {}
        self._add(list(modules))

    @staticmethod
    def _state(function: FunctionType) -> tuple:
        return function.__code__, function.__defaults__, function.__kwdefaults__

    def _add(self, modules: list[ModuleType]) -> None:
        self.saved.extend((module.__dict__, dict(module.__dict__)) for module in modules)
        owned = {id(c): c for m in modules for c in vars(m).values() if _defined_in(c, m)}
        classes = [c for c in owned.values() if not c.__flags__ & (1 << 8)]  # not Py_TPFLAGS_IMMUTABLETYPE
        self.classes.extend((cls, dict(vars(cls))) for cls in classes)
        found = [f for m in modules for f in vars(m).values() if isinstance(f, FunctionType)]
        found += [f for cls in classes for value in vars(cls).values() for f in functions_behind(value)]
        self.functions.update((id(f), (f, self._state(f))) for f in found)

    def add_leaklab(self) -> None:
        """leaklab's own modules (the scenario, the checks it runs) and their classes: an answer cell that
        rebinds `Checks.record` at its top level has that undone before anything is checked."""
        own = [m for name, m in list(sys.modules.items()) if name.partition(".")[0] == "leaklab" and m is not None]
        self._add(own)
        self.own.update(id(m.__dict__) for m in own)

    def restore(self) -> list[str]:
        """Put everything back; the methods and functions that had been changed in place, by name."""
        changed = []
        for namespace, original in self.saved:
            if id(namespace) in self.own:
                rebound = [n for n, v in original.items() if callable(v) and namespace.get(n) is not v]
                changed += [f"{namespace.get('__name__')}.{name}" for name in rebound]
            for name in [name for name in namespace if name not in original]:
                del namespace[name]
            namespace.update(original)
        for cls, original in self.classes:
            for name in [name for name in vars(cls) if name not in original]:
                delattr(cls, name)
            for name, value in original.items():
                if vars(cls).get(name) is not value:
                    if functions_behind(value):
                        changed.append(f"{cls.__qualname__}.{name}")
                    setattr(cls, name, value)
        for function, state in self.functions.values():
            if self._state(function) != state:
                changed.append(function.__qualname__)
                function.__code__, function.__defaults__, function.__kwdefaults__ = state
        return changed


def _changed(names: list[str]) -> str:
    return f"tampered: the answer changed Python's or leaklab's code: {', '.join(names)}"


class Channel:
    """The child's ends of the two pipes its parent opened: messages out, one byte back at each stop."""

    def __init__(self, report: int, acks: int) -> None:
        self.report, self.acks = report, acks

    def say(self, message: dict) -> None:
        data = (_Encoder().encode(message) + "\n").encode()
        while data:
            data = data[_write(self.report, data) :]

    def stop_at(self, stage: str, **details: object) -> None:
        """Tell the parent where this run is, and wait while it looks at this process from outside."""
        self.say({"at": stage, **details})
        if not _read(self.acks, 1):
            _leave(1)  # the parent is gone


class Tasks:
    """Every task the run creates, held strongly by a task factory, with asyncio's registry as a second
    witness."""

    def __init__(self) -> None:
        self.registries = task_registries()
        self.created: list[asyncio.Task] = []

    def factory(self, loop: asyncio.AbstractEventLoop, coro: object, **options: object) -> asyncio.Task:
        task = _Task(coro, loop=loop, **options)  # type: ignore[arg-type]
        self.created.append(task)
        return task

    def pending(self, loop: asyncio.AbstractEventLoop) -> set[asyncio.Task]:
        """The loop's tasks not done: those the factory made, those asyncio registered, and, for a task
        made with `asyncio.Task(...)` and taken out of the registry, those the garbage collector tracks. Asked
        of the state the loop keeps, not of the task's own methods, which a subclass may override."""
        candidates = {*self.created, *registered_tasks(self.registries)}
        candidates |= {o for o in _all_objects() if isinstance(o, _Task)}
        return {t for t in candidates if task_loop(t) is loop and not task_done(t)}


# Read as the loop keeps them, not through methods a `Task` subclass may override.
_unretrieved = (
    asyncio.futures._PyFuture._log_traceback.fget  # type: ignore[attr-defined]
    if _CTask is None
    else _CTask._log_traceback.__get__  # type: ignore[attr-defined]
)
_coroutine_of, _exception_of = (
    (_Task.get_coro, _Task.exception) if _CTask is None else (_CTask.get_coro, _CTask.exception)
)


class _DiedUnseen:
    """The answer's tasks that ended with an exception nobody retrieved: a child that died where neither its
    error nor the work it held was seen (asyncio logs "Task exception was never retrieved" once such a task
    is collected). One still referenced is found among the tasks; one already freed, through the loop's
    exception handler, which asyncio calls as it frees it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.freed = loop, []
        loop.set_exception_handler(self._handle)

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if context.get("message") == "Task exception was never retrieved" and self._answers(context.get("future")):
            self.freed.append(_died_of(context["future"]))
        loop.default_exception_handler(context)

    def _answers(self, task: object) -> bool:
        if not isinstance(task, _Task) or task_loop(task) is not self.loop:
            return False
        code = getattr(_coroutine_of(task), "cr_code", None)
        return code is None or not in_library(code.co_filename)

    def found(self, tasks: list[asyncio.Task]) -> list[str]:
        """How each died, as `coroutine: exception`; those found are marked retrieved, and counted once."""
        unique = {id(t): t for t in tasks}.values()
        died = [t for t in unique if self._answers(t) and task_done(t) and _unretrieved(t)]
        self.loop.set_exception_handler(None)
        return self.freed + [_died_of(t) for t in died]


def _died_of(task: asyncio.Task) -> str:
    coroutine = _coroutine_of(task)
    name = getattr(coroutine, "__qualname__", type(coroutine).__name__)
    return f"{name}: {described(_exception_of(task))}"  # reading the exception marks it retrieved


def _awaited(awaitable: object) -> object:
    for name in ("cr_await", "gi_yieldfrom", "ag_await"):
        if (awaited := getattr(awaitable, name, None)) is not None:
            return awaited
    return None


def parked_coroutines(pending: set[asyncio.Task]) -> list[object]:
    """The answer's coroutines (and async generators) suspended in an `await` that no pending task drives,
    nor another suspended coroutine awaits: a coroutine stepped by hand, without a task, and parked on a
    future nothing resolves is left waiting as surely as a task (asyncio's registry never sees it)."""
    suspended = [
        o
        for o in _all_objects()
        if (isinstance(o, CoroutineType) and o.cr_suspended)
        or (isinstance(o, AsyncGeneratorType) and o.ag_await is not None and not o.ag_running)
    ]
    driven: set[int] = set()
    for awaitable in [t.get_coro() for t in pending] + [_awaited(o) for o in suspended]:
        while awaitable is not None and id(awaitable) not in driven:
            driven.add(id(awaitable))
            awaitable = _awaited(awaitable)
    code = [o.cr_code if isinstance(o, CoroutineType) else o.ag_code for o in suspended]
    return [o for o, c in zip(suspended, code, strict=True) if id(o) not in driven and not in_library(c.co_filename)]


def nothing_can_wake(loop: asyncio.AbstractEventLoop, threads: int, burst_over: bool) -> bool:
    """The loop is quiet for good: nothing ready, no live timer and, while the burst runs, no socket
    but the loop's own wake-up pipe and no extra thread that could call back into the loop.

    No public API tells this; these private fields of the selector event loop do. Once the burst is
    over, sockets still waiting and threads still running are the answer's leftovers.
    """
    return (
        not loop._ready  # type: ignore[attr-defined]
        and all(h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]
        and (burst_over or (len(loop._selector.get_map()) <= 1 and os_threads() <= threads))  # type: ignore[attr-defined]
    )


def settle(threads: int, bound_s: float) -> None:
    """Wait until the threads the burst started have ended, or `bound_s` has passed: a right answer's
    thread may still be finishing its call (a socket timeout that ends it at the call's own deadline,
    after its caller cancelled) and holding what the call holds; a leaked one is still there at the
    bound. What is left open is counted after this, so that no load on the machine can turn a thread
    that ends on time into a leftover."""
    deadline = _monotonic() + bound_s
    while os_threads() > threads and _monotonic() < deadline:
        time.sleep(0.005)


def run_until_quiet(
    loop: asyncio.AbstractEventLoop, threads: int, budget_s: float, burst: asyncio.Task, *, ends_with_burst: bool
) -> None:
    """Run the loop until nothing can wake it any more, or the budget is spent; with `ends_with_burst`, also
    stop when the burst ends (its scenario ends it at the moment the lesson names: then what is still
    pending was left behind, however soon a timer of its own would have ended it)."""
    deadline = _monotonic() + budget_s

    def check() -> None:
        over = ends_with_burst and burst.done()
        if over or nothing_can_wake(loop, threads, burst.done()) or _monotonic() > deadline:
            loop.stop()
        else:
            loop.call_later(0.002, check)

    loop.call_soon(check)
    loop.run_forever()


def run_burst(
    loop: asyncio.AbstractEventLoop, burst: Awaitable[object], threads: int, budget_s: float, *, ends_with_burst: bool
) -> asyncio.Task:
    """Run one burst (or warm-up) with a default executor of its own, until the loop is quiet (or the burst
    is over, with `ends_with_burst`)."""

    async def burst_then_idle_threads_gone() -> object:
        # Shut down after the burst: its idle workers would otherwise count as leaked threads (and keep
        # the loop from going quiet); one stuck in a call is a leftover.
        executor = ThreadPoolExecutor(thread_name_prefix="default-executor")
        loop.set_default_executor(executor)
        try:
            return await burst
        finally:
            executor.shutdown(wait=False)

    task = loop.create_task(burst_then_idle_threads_gone())
    run_until_quiet(loop, threads, budget_s, task, ends_with_burst=ends_with_burst)
    return task


class _FinalisedOpen:
    """From now on, every `ResourceWarning` is recorded: a socket, transport or `StreamWriter` that was let go
    open is closed by its finaliser (or the collector), which says so ("unclosed ..."), where the operating
    system sees nothing left open any more."""

    def __init__(self) -> None:
        self._recording = warnings.catch_warnings(record=True)
        self._caught = self._recording.__enter__()
        warnings.simplefilter("always", ResourceWarning)

    def count(self) -> int:
        """Stop recording; how many connections were closed by their finaliser, not by the answer."""
        self._recording.__exit__(None, None, None)
        return sum(
            issubclass(w.category, ResourceWarning) and _UNCLOSED.match(str(w.message)) is not None
            for w in self._caught
        )


_UNCLOSED = re.compile(r"unclosed (transport|<socket\.socket|<StreamWriter|<asyncio\.)")


def _failure_of(burst: asyncio.Task | None) -> BaseException | None:
    """The exception a burst (or warm-up) ended with, if it ended with one."""
    if burst is None or not burst.done() or burst.cancelled():
        return None
    return burst.exception()


class Child:
    """One isolated run: the answer defined, warmed up, measured through the scenario's burst."""

    def __init__(self, job: dict, channel: Channel, guard: Guard) -> None:
        self.job, self.channel, self.guard = job, channel, guard

    def finish(self, run: IsolatedRun) -> None:
        """Send the result, wait while the parent looks at this process, and leave (a leaked non-daemon
        thread must not keep this process alive)."""
        if (changed := self.guard.restore()) and run.reason is not Reason.TAMPERED:  # changed since the last look
            run = IsolatedRun(error=_changed(changed), reason=Reason.TAMPERED)
        self.channel.stop_at("result", run=asdict(run))
        _leave(0)

    def restore(self) -> None:
        """Put back what the answer changed; a run whose answer changed code in place ends here."""
        if changed := self.guard.restore():
            self.fail(_changed(changed), Reason.TAMPERED)

    def fail(self, message: str, reason: Reason | None = None) -> None:
        self.finish(IsolatedRun(error=message, reason=reason))

    def run_answer_cell(self, namespace: dict[str, object], loop: asyncio.AbstractEventLoop | None = None) -> None:
        """The answer cell, run in `namespace` (a top-level `await` on `loop`, else on a loop of its own, as
        `asyncio.run` would); then what it changed at its top level undone."""
        try:
            run_cell(self.job["source"], "<answer cell>", namespace, loop)
        except BaseException as exc:
            self.fail(f"the answer cell raised {described(exc)}", reason_of(exc) or Reason.ANSWER_FAILED)
        self.restore()

    def define_handler(self, scenario: Scenario) -> Callable:
        """Run the answer cell as the learner's notebook would, then undo what it rebound at its top level."""
        namespace = {"__name__": "__main__", "asyncio": asyncio}  # as in the notebook: the same to the answer
        namespace.update(answer_namespace(scenario))
        self.run_answer_cell(namespace)
        handler = namespace.get(self.job["function"])
        if not callable(handler):
            self.fail(f"the answer cell does not define {self.job['function']!r}")
        return handler  # type: ignore[return-value]

    def values(self) -> None:
        """The lesson's set-up cells run, then the answer cell, as in the notebook; the values of the names
        asked for, where they are plain data. With `before`, the learner's own cells above the answer run
        first, each as far as it goes (a demo that fails, or a line of IPython magic, is skipped)."""
        namespace: dict[str, object] = {"__name__": "__main__", "get_ipython": _NoIPython}
        for setup in self.job["setup"]:
            exec(compile(setup, "<set-up cell>", "exec", dont_inherit=True), namespace)
        self.guard.add_leaklab()
        self.channel.stop_at("ready", pid=_getpid())
        loop = asyncio.new_event_loop()  # the kernel's: one for every cell's top-level `await`
        # The cells above may record (memray) or plot, into the artefacts folder: in the sandbox the checkout
        # is read-only, so they get a folder of their own in the run's private /tmp, as a kernel has one.
        with (
            tempfile.TemporaryDirectory(prefix="leaklab-artefacts-", ignore_cleanup_errors=True) as artefacts,
            _truth.learner_cells() as truths,  # a diagnosis read from the grader's own answer is no diagnosis
        ):
            os.environ[ARTEFACTS_ENV] = artefacts
            for number, cell in enumerate(self.job.get("before", [])):
                try:
                    run_cell(_python_of(cell), f"<cell {number + 1}>", namespace, loop)
                except Exception:
                    continue  # as far as it goes, as in the notebook where it failed too
            self.run_answer_cell(namespace, loop)
        if truths:
            self.fail(
                f"tampered: the answer read the grader's own answer: {', '.join(sorted(set(truths)))}", Reason.TAMPERED
            )
        self.channel.stop_at("measuring")
        found = {name: plain(namespace[name]) for name in self.job["names"] if name in namespace}
        self.finish(IsolatedRun(outcome={"values": {name: value for name, value in found.items() if value}}))

    def run(self) -> None:
        try:
            scenario = load(self.job["scenario"])
        except LeaklabError:
            self.fail(f"no scenario named {self.job['scenario']!r}")
        # From here on the answer's code runs: a read of the grader's own records (`_truth`: lesson 01's
        # witness of each request, the client's signals in it) is noted, and the run ends as tampered.
        # Before the guard looks: what it puts back after the answer cell is the list that notes.
        noting = contextlib.ExitStack()
        truths = noting.enter_context(_truth.learner_cells())
        self.guard.add_leaklab()
        threads_before = os_threads()
        self.channel.stop_at("ready", pid=_getpid())  # the parent counts this process's threads
        handler = self.define_handler(scenario)
        tasks = Tasks()
        loop = asyncio.new_event_loop()
        loop.set_task_factory(tasks.factory)
        died_unseen = _DiedUnseen(loop)
        asyncio.set_event_loop(loop)
        files_before = open_files()  # the loop's own selector and wake-up pipe are in the count
        self.channel.stop_at("measuring")  # and its open files

        ends_with_burst = getattr(scenario, "LEFTOVERS_AT_BURST_END", False)
        # A warm-up's allocations are not retained memory (first use: a cache, an import); the rest of it
        # counts. Its calls are judged with the burst's, and what it leaves pending is a leftover: an
        # answer's first call is a call like any other.
        warm_up_task = warm_up_summary = None
        if isinstance(scenario, WarmsUp):
            warm_up, warm_up_summary = scenario.warm_up(handler)
            warm_up_task = run_burst(
                loop, warm_up, threads_before, settings.WARM_UP_BUDGET_S, ends_with_burst=ends_with_burst
            )
            warm_up = None
        _collect()
        _trace()
        witness = bytearray(64)  # traced from here on: tracemalloc forgets it only if its traces are cleared
        memory_before = _traced_memory()[0]

        # The cyclic garbage collector stays off during the burst: what counts is what the answer
        # released itself (a socket it closed), not what a collection would have found by luck.
        _pause_collector()
        finalised = _FinalisedOpen()
        main, summary = scenario.probe(handler, **self.job["options"])
        main_task = run_burst(loop, main, threads_before, settings.BURST_BUDGET_S, ends_with_burst=ends_with_burst)
        self.restore()  # before anything is counted: a builtin the burst replaced counts nothing
        settle(threads_before, getattr(scenario, "SETTLE_S", settings.SETTLE_S))
        files_left = max(0, open_files() - files_before)
        # Counted before the collector runs again: it would destroy a pending task only a cycle holds.
        leftovers = [t for t in tasks.pending(loop) if t is not main_task and t is not warm_up_task]
        parked = parked_coroutines(tasks.pending(loop))
        died = died_unseen.found([*tasks.created, *(o for o in _all_objects() if isinstance(o, _Task))])
        _resume_collector()
        for failure in map(_failure_of, (warm_up_task, main_task)):
            if failure is not None:
                self.fail(f"the burst failed: {failure!r}", reason_of(failure))
        if not _tracing():
            self.fail("the answer stopped tracemalloc, so its memory cannot be measured")
        if _traceback_of(witness) is None:
            self.fail("tampered: the answer cleared tracemalloc's traces, the witness of its memory", Reason.TAMPERED)
        outcome = summary()
        noting.close()
        if truths:
            read = ", ".join(sorted(set(truths)))
            self.fail(f"tampered: the answer read the grader's own records: {read}", Reason.TAMPERED)
        requests = outcome.get("requests", 1)  # the burst's: the warm-up's memory is not measured
        if warm_up_summary is not None:
            outcome = judged_together(outcome, warm_up_summary())
        # The bursts' own records must not count as retained memory.
        main = main_task = summary = warm_up_task = warm_up_summary = None
        tasks.created.clear()
        _collect()
        if getattr(scenario, "FILES_AFTER_COLLECTION", False):  # the scenario counts files a collection frees
            files_left = max(0, open_files() - files_before)
        closed_by_finaliser = finalised.count()
        retained = (_traced_memory()[0] - memory_before) / max(1, requests)
        # Every thread but the main one, those started outside threading (`_thread`) too.
        extra_threads = [
            *(t for t in threading.enumerate() if t is not threading.main_thread()),
            *unregistered_threads(),
        ]
        threads_left = max(0, os_threads() - threads_before)
        report = format_groups(group_stacks(leftovers, extra_threads, parked))
        if threads_left > len(extra_threads):  # threads that run no Python code: only the OS sees them
            unseen = counted(threads_left - len(extra_threads), "thread")
            report += "\n\n" + _i18n._(
                "and {threads} that run no Python code, seen by the operating system", threads=unseen
            )
        if died:
            report += (
                "\n\n"
                + _i18n._("died of an exception nobody retrieved:")
                + "".join(f"\n{count} @ {how}" for how, count in Counter(died).most_common())
            )
        self.finish(
            IsolatedRun(
                outcome=outcome,
                leftover_tasks=len(leftovers) + len(parked),
                died_unseen=len(died),
                leftover_threads=threads_left,
                leftover_files=files_left,
                closed_by_finaliser=closed_by_finaliser,
                retained_bytes_per_request=retained,
                leak_report=report,
            )
        )


class _NoIPython:
    """What `get_ipython()` gives the learner's cells in a values run: magics and shell lines do nothing."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def run_cell(source: str, name: str, namespace: dict[str, object], loop: asyncio.AbstractEventLoop | None) -> None:
    """Run a notebook cell as IPython does: one with a top-level `await` (IPython's autoawait) is run to
    its end on `loop`, or, without one, on a fresh loop closed afterwards as `asyncio.run` closes its own.
    Compiled without this module's `from __future__` imports, as the kernel compiles it: annotations are
    evaluated (a dataclass's `_: KW_ONLY` works)."""
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    if not code.co_flags & inspect.CO_COROUTINE:
        exec(code, namespace)
    elif loop is not None:
        loop.run_until_complete(eval(code, namespace))
    else:
        with asyncio.Runner() as runner:
            runner.run(eval(code, namespace))


def _python_of(cell: str) -> str:
    """A notebook cell as plain Python: IPython's own transformer turns `%magic` and `!command` lines into
    `get_ipython()` calls (which do nothing in a values run: `_NoIPython`)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return cell
    return TransformerManager().transform_cell(cell)


# The top-level packages a Jupyter kernel has loaded, that an answer may look for in `sys.modules` to tell
# the grader's run from the notebook ("ipykernel" not in sys.modules). Each is the package's own module,
# its `__init__` not yet run (ipykernel's import costs about 0.45 s a run): its `__file__`, `__path__` and
# `__spec__` are there, and its first other attribute asked for (or a submodule that needs one) runs it.
_KERNEL_PACKAGES = ("ipykernel", "IPython", "jupyter_client", "jupyter_core", "zmq", "tornado", "traitlets", "comm")


def as_in_a_kernel() -> None:
    """Put a kernel's packages into `sys.modules`, each loaded only once something uses it."""
    for name in _KERNEL_PACKAGES:
        spec = None if name in sys.modules else importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)

        def load(attribute: str, module: ModuleType = module, spec: ModuleSpec = spec) -> object:
            del module.__getattr__  # type: ignore[attr-defined]  # once: the package's own code takes over
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            return getattr(module, attribute)

        module.__getattr__ = load  # type: ignore[attr-defined]  # only for names the module lacks (PEP 562)
        sys.modules[name] = module


def main() -> None:
    """Read the job on stdin, run it, send its result; a failure of any kind is reported as data."""
    job = json.loads(sys.stdin.read())
    as_in_a_kernel()
    channel = Channel(job.pop("report"), job.pop("acks"))  # the pipes' numbers come on stdin, too
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # every thread's stack, if the run overstays
    _i18n.messages()  # the messages' catalog read now, as the parent chose it: before the answer runs
    resource.setrlimit(resource.RLIMIT_FSIZE, (settings.RUN_OUTPUT_BYTES, settings.RUN_OUTPUT_BYTES))
    child = Child(job, channel, Guard(_GUARDED))
    try:
        child.values() if job.get("kind") == "values" else child.run()
    except BaseException as exc:  # a limit hit outside the answer's own cell (the burst's set-up, a thread)
        child.fail(f"the handler's run failed: {type(exc).__name__}: {exc}", reason_of(exc) or Reason.ANSWER_FAILED)
