"""Where tasks and threads wait: their stacks, grouped like a pprof goroutine dump (`debug=1`).

A thousand leaked tasks are usually one bug, so identical stacks are folded into one group with a
count, biggest group first, each frame with its function, file and line, innermost frame first.
"""

from __future__ import annotations

import asyncio
import sys
import sysconfig
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from ._i18n import _, ngettext

# Paths under these are shown from there on (`asyncio/queues.py`, `leaklab/scenarios/...`).
_LIBRARY_ROOTS = sorted(
    {str(Path(sysconfig.get_paths()[key])) for key in ("stdlib", "purelib", "platlib")}
    | {str(Path(__file__).resolve().parent.parent)},
    key=len,
    reverse=True,
)


@dataclass(frozen=True)
class Frame:
    """One line of a stack: where a function is, or where it waits."""

    function: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.function}  {self.file}:{self.line}"


@dataclass(frozen=True)
class Group:
    """Tasks or threads with identical stacks (innermost frame first)."""

    kind: str  # "task" or "thread"
    frames: tuple[Frame, ...]
    waiting_on: str  # what the innermost frame awaits; empty for threads
    count: int


def _short(path: str) -> str:
    for root in _LIBRARY_ROOTS:
        if path.startswith(root + "/"):
            return path[len(root) + 1 :]
    return path


def _frame(frame: FrameType) -> Frame:
    return Frame(frame.f_code.co_name, _short(frame.f_code.co_filename), frame.f_lineno)


def in_library(path: str) -> bool:
    """Whether code from `path` is Python's, an installed package's or leaklab's, not the answer's."""
    return _short(path) != path


def task_stack(task: asyncio.Task) -> tuple[tuple[Frame, ...], str]:
    """The frames a suspended task waits in, innermost first, and what the innermost one awaits.

    `Task.get_stack()` stops at the outermost coroutine; following `cr_await` reaches the `await`
    where the task is actually stuck (a queue's `put`, an event's `wait`, ...).
    """
    return coroutine_stack(task.get_coro())


def coroutine_stack(awaitable: object) -> tuple[tuple[Frame, ...], str]:
    """The frames a suspended coroutine (a task's, or one driven without a task) waits in, innermost
    first, and what the innermost one awaits."""
    frames: list[Frame] = []
    innermost = awaitable
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            break
        frames.append(_frame(frame))
        innermost = awaitable
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    if awaitable is not None:  # a future's iterator (C `FutureIter`) stands for the future it waits on
        waiting_on = "Future" if type(awaitable).__name__ == "FutureIter" else type(awaitable).__name__
    elif getattr(innermost, "cr_running", False) or getattr(innermost, "gi_running", False):
        waiting_on = _("nothing: running right now")
    else:
        waiting_on = _("nothing (not started yet)")
    return tuple(reversed(frames)), waiting_on


def thread_stack(thread: threading.Thread | int) -> tuple[Frame, ...]:
    """The frames of a running thread (or of the thread with that ident), innermost first."""
    ident = thread if isinstance(thread, int) else thread.ident
    frame = sys._current_frames().get(ident or -1)
    frames = []
    while frame is not None:
        frames.append(_frame(frame))
        frame = frame.f_back
    return tuple(frames)


def group_stacks(
    tasks: Iterable[asyncio.Task] = (), threads: Iterable[threading.Thread | int] = (), coroutines: Iterable = ()
) -> list[Group]:
    """Fold tasks, threads and coroutines left waiting without a task into groups with identical stacks,
    biggest first."""
    counts: Counter[tuple[str, tuple[Frame, ...], str]] = Counter()
    for task in tasks:
        frames, waiting_on = task_stack(task)
        counts["task", frames, waiting_on] += 1
    for coroutine in coroutines:
        frames, waiting_on = coroutine_stack(coroutine)
        counts["coroutine (no task)", frames, waiting_on] += 1
    for thread in threads:
        counts["thread", thread_stack(thread), ""] += 1
    return [Group(kind, frames, on, n) for (kind, frames, on), n in counts.most_common()]


def unregistered_threads() -> list[int]:
    """The idents of the running Python threads that `threading` does not know of (started with `_thread`)."""
    known = {thread.ident for thread in threading.enumerate()}
    return [ident for ident in sys._current_frames() if ident not in known]


def counted(number: int, noun: str, plural: str = "") -> str:
    """`1 thread`, `2 threads`, `0 tasks`: "task" and "thread" in the learner's language, any other noun in
    English for the instructor's output (`plural` where adding an "s" is wrong: "processes")."""
    if noun == "task":
        return ngettext("{n} task", "{n} tasks", number)
    if noun == "thread":
        return ngettext("{n} thread", "{n} threads", number)
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def format_groups(groups: list[Group], *, title: str | None = None) -> str:
    """Render groups as plain text in the shape of pprof's `debug=1` goroutine dump (its `N @ ...` group
    lines and frames as pprof writes them; the headline in the learner's language)."""
    tasks = sum(g.count for g in groups if g.kind != "thread")  # a coroutine left waiting stands for a task
    threads = sum(g.count for g in groups if g.kind == "thread")
    headline = _(
        "{title}: total {total} ({tasks}, {threads})",
        title=_("leftover") if title is None else title,
        total=tasks + threads,
        tasks=counted(tasks, "task"),
        threads=counted(threads, "thread"),
    )
    lines = [headline]
    for group in groups:
        lines.append("")
        lines.append(f"{group.count} @ {group.kind}" + (f" waiting on {group.waiting_on}" if group.waiting_on else ""))
        lines.extend(f"#\t{frame}" for frame in group.frames)
    return "\n".join(lines)
