"""goleak's idea for Python: after a piece of work, every task and thread it started must be gone.

Work that is shutting down needs a moment, so the check retries with backoff before it fails; when it
fails, the report says where the leftovers wait, grouped by identical stack.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from types import TracebackType

from ._census import Census
from ._stacks import format_groups, group_stacks


class LeakError(AssertionError):
    """Tasks or threads outlived the work that started them."""

    def __init__(self, report: str, *, tasks: int, threads: int) -> None:
        super().__init__(report)
        self.report = report
        self.tasks = tasks
        self.threads = threads


def _pauses(timeout: float) -> Iterator[float]:
    """Backoff pauses (1 ms, 2 ms, ... at most 100 ms) until `timeout` seconds have passed."""
    pause, deadline = 0.001, time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield pause
        pause = min(pause * 2, 0.1)


class no_leaks:
    """Fail with `LeakError` if the block leaves tasks or threads behind.

    `with` waits for threads only (a loop that is not running cannot finish its tasks);
    `async with` also lets the running loop finish tasks while it waits.
    """

    def __init__(self, *, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self.baseline = Census([], [])
        self._checker: asyncio.Task | None = None

    def leftovers(self) -> tuple[list[asyncio.Task], list[threading.Thread]]:
        """Tasks and threads alive now that were not alive when the block began."""
        tasks = [t for t in self.baseline.new_tasks() if t is not self._checker]
        return tasks, self.baseline.new_threads()

    def _raise_if_leftovers(self) -> None:
        tasks, threads = self.leftovers()
        if tasks or threads:
            report = format_groups(group_stacks(tasks, threads))
            raise LeakError(report, tasks=len(tasks), threads=len(threads))

    def __enter__(self) -> no_leaks:
        self.baseline = Census.take()
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            return
        for pause in _pauses(self.timeout):
            if not any(self.leftovers()):
                return
            time.sleep(pause)
        self._raise_if_leftovers()

    async def __aenter__(self) -> no_leaks:
        self._checker = asyncio.current_task()
        return self.__enter__()

    async def __aexit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            return
        for pause in _pauses(self.timeout):
            if not any(self.leftovers()):
                return
            await asyncio.sleep(pause)
        self._raise_if_leftovers()
