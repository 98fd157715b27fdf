"""Who is alive right now: the asyncio tasks and threads a workload started.

A Jupyter kernel runs its own tasks and threads beside the learner's code (and starts new tasks for
every message it handles), so every count here is relative to a baseline taken before the workload,
with the kernel's own machinery left out.
"""

from __future__ import annotations

import asyncio
import asyncio.futures
import asyncio.tasks
import gc
import os
import sys
import threading
import weakref
from collections.abc import Iterable

from ._i18n import _

# Tasks whose coroutine comes from these packages belong to the kernel or the server, never to
# a workload: ipykernel starts a fresh `shell_main` task for each cell it runs.
_INFRASTRUCTURE = ("ipykernel", "IPython", "tornado", "zmq", "jupyter_client", "jupyter_core", "anyio")


# A task's own methods are the answer's to override (a `Task` subclass whose `done()` says True while it
# waits); the C implementation's, bound here, read the state the loop itself keeps.
try:
    from _asyncio import Task as _CTask
except ImportError:  # an interpreter without the C accelerator: every task is pure Python
    _CTask = None
_c_done = _CTask.done if _CTask is not None else None
_c_get_loop = _CTask.get_loop if _CTask is not None else None
_py_done, _py_get_loop = asyncio.futures._PyFuture.done, asyncio.futures._PyFuture.get_loop


def task_done(task: asyncio.Task) -> bool:
    """Whether `task` has ended, as its loop knows it, not as a subclass's `done()` says."""
    if _CTask is not None and isinstance(task, _CTask):
        return _c_done(task)  # type: ignore[misc]
    if isinstance(task, asyncio.futures._PyFuture):
        return _py_done(task)  # reads `_state`, which a pure-Python subclass can still forge
    return task.done()


def task_loop(task: asyncio.Task) -> asyncio.AbstractEventLoop:
    """The loop `task` runs on, as the task was made, not as a subclass's `get_loop()` says."""
    if _CTask is not None and isinstance(task, _CTask):
        return _c_get_loop(task)  # type: ignore[misc]
    if isinstance(task, asyncio.futures._PyFuture):
        return _py_get_loop(task)
    return task.get_loop()


# Bound when this module is imported, before any answer runs: a count of processes asks with these.
_listdir, _open = os.listdir, open
_current_frames, _get_ident, _get_native_id = sys._current_frames, threading.get_ident, threading.get_native_id
_thread_is_alive, _Foreign = threading.Thread.is_alive, threading._DummyThread  # type: ignore[attr-defined]
_BOOTSTRAP, _main_ident = threading.Thread._bootstrap.__code__, threading.main_thread().ident  # type: ignore[attr-defined]

ThreadMark = tuple[int, int]  # a thread as the interpreter and the operating system name it: (ident, native id)


def thread_mark() -> ThreadMark:
    """The calling thread's mark, (ident, native id): taken inside a thread (by a job it runs, say), it is
    the grader's to keep, unlike the ids a `threading.Thread` object carries, which any code can change."""
    return _get_ident(), _get_native_id()


def running(marks: Iterable[ThreadMark]) -> set[ThreadMark]:
    """Those of `marks` whose thread still runs Python code: the operating system lists its native id
    (`/proc/self/task`) with memory of its own, and the interpreter still runs a frame under its ident. A
    thread is out of the second from the moment its code has returned, before `join()` returns: asking
    right after a `stop()` depends on no timing; and no flag of `threading` (`_is_stopped`, its registry)
    can hide one that runs.

    An ident is the address of the thread's stack, which the C library hands to a new thread as soon as
    the kernel has released the old one's memory, before it stops listing the old id: for that moment (a
    long one on a loaded machine) an ended thread's mark would seem to run under the new thread's frames.
    The kernel shows such a thread with no memory (`stat`'s vsize 0), so it is not counted."""
    tasks, frames = set(_listdir("/proc/self/task")), _current_frames()
    return {mark for mark in marks if str(mark[1]) in tasks and mark[0] in frames and _has_memory(mark[1])}


def _has_memory(native_id: int) -> bool:
    """Whether the thread `native_id` of this process still has its memory: one that is exiting has
    none (or is gone already)."""
    try:
        with _open(f"/proc/self/task/{native_id}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return len(fields) > 20 and fields[20] != "0"  # vsize: the 23rd field, the 21st after the name


def os_threads() -> set[int]:
    """The native ids of this process's threads, as the operating system lists them (`/proc/self/task`),
    but for those exiting (no memory of their own: `_has_memory`): however each was started (`threading`,
    `_thread.start_new_thread`, C code), and whatever `threading`'s registry says."""
    return {int(tid) for tid in _listdir("/proc/self/task") if _has_memory(int(tid))}


def foreign_threads() -> set[int]:
    """The idents of the threads running Python code that `threading` did not start (`_thread`'s, or a C
    library's): their outermost frame is not `Thread._bootstrap`. The main thread is left out. A thread is
    out of this set from the moment its code has returned, like `running`'s."""
    found = set()
    for ident, frame in _current_frames().items():
        while frame.f_back is not None:
            frame = frame.f_back
        if frame.f_code is not _BOOTSTRAP and ident != _main_ident:
            found.add(ident)
    return found


def thread_alive(thread: threading.Thread) -> bool:
    """Whether `thread` still runs (`alive_threads`)."""
    return bool(alive_threads([thread]))


def alive_threads(threads: Iterable[threading.Thread]) -> list[threading.Thread]:
    """Those of `threads` that still run: as `threading.Thread` itself says (not a subclass's `is_alive`),
    or as the operating system and the interpreter say (`running`) under the ids each thread gave itself
    as it started; a thread started outside `threading` (with `_thread`) only by the latter. The OS is
    read once, however many threads are asked about."""
    found, unsure = [], []
    for thread in threads:
        if not isinstance(thread, _Foreign) and _thread_is_alive(thread):
            found.append(thread)
        else:  # ended, as far as threading's flags say; `_thread` stand-ins cannot tell
            ids = object.__getattribute__(thread, "__dict__")
            unsure.append((thread, (ids.get("_ident"), ids.get("_native_id"))))
    if unsure:
        still = running(mark for _thread, mark in unsure)
        found += [thread for thread, mark in unsure if mark in still]
    return found


def process_parents(*, running_only: bool = False) -> dict[int, int]:
    """Every process this one can see, with its parent's pid (Linux: `/proc/PID/stat`); with
    `running_only`, not those that have ended and wait to be reaped (zombies)."""
    parents = {}
    for name in _listdir("/proc"):
        if name.isdigit():
            try:
                with _open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as stat:
                    state, parent = stat.read().rpartition(")")[2].split()[:2]
                if not (running_only and state == "Z"):
                    parents[int(name)] = int(parent)
            except (OSError, ValueError):
                continue  # it ended meanwhile
    return parents


def task_registries() -> list[object]:
    """The collections in which asyncio registers every task of every loop.

    Python 3.11 has one weak set (`_all_tasks`); 3.12 and 3.13 split it into `_scheduled_tasks` and
    `_eager_tasks`. From 3.14 native tasks live in C lists no Python name reaches: an empty list here.
    """
    if sys.version_info >= (3, 14):
        return []
    names = ("_scheduled_tasks", "_eager_tasks") if sys.version_info >= (3, 12) else ("_all_tasks",)
    return [registry for name in names if (registry := getattr(asyncio.tasks, name, None)) is not None]


def registered_tasks(registries: list[object] | None = None) -> list[asyncio.Task]:
    """Every task of every event loop, pending or not."""
    registries = task_registries() if registries is None else registries
    if not registries:  # the registry is out of reach: fall back to the garbage collector's view
        return [obj for obj in gc.get_objects() if isinstance(obj, asyncio.Task)]
    tasks: list[asyncio.Task] = []
    for registry in registries:
        for _attempt in range(1000):  # a weak set may change size under us while another thread creates tasks
            try:
                tasks.extend(list(registry))  # type: ignore[call-overload]
                break
            except RuntimeError:
                continue
        else:
            raise RuntimeError(_("asyncio's task registry kept changing while it was read"))
    return tasks


def _is_infrastructure(task: asyncio.Task) -> bool:
    frame = getattr(task.get_coro(), "cr_frame", None)
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    return module.split(".", 1)[0] in _INFRASTRUCTURE


def live_tasks() -> list[asyncio.Task]:
    """The pending tasks of every event loop, the kernel's own left out."""
    return [t for t in registered_tasks() if not task_done(t) and not _is_infrastructure(t)]


def live_threads() -> list[threading.Thread]:
    """The running Python threads."""
    return alive_threads(threading.enumerate())


class Census:
    """The tasks and threads alive at one moment, to tell later which ones are new.

    Held weakly, so a census keeps nothing alive and a freed object's address cannot pass for it.
    """

    def __init__(self, tasks: list[asyncio.Task], threads: list[threading.Thread]) -> None:
        self._tasks: weakref.WeakSet[asyncio.Task] = weakref.WeakSet(tasks)
        self._threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet(threads)

    @classmethod
    def take(cls) -> Census:
        """Count what is alive now."""
        return cls(live_tasks(), live_threads())

    def new_tasks(self) -> list[asyncio.Task]:
        """Pending tasks that were not alive when the census was taken."""
        return [t for t in live_tasks() if t not in self._tasks]

    def new_threads(self) -> list[threading.Thread]:
        """Running threads that were not alive when the census was taken."""
        return [t for t in live_threads() if t not in self._threads]
