"""The grader-to-kernel hand-off: the grader's own measurements, shown by the kernel's test cells.

Both runs of a submission's tests (the grader's own, and the kernel's, see `core`) call
`run_isolated` with the same jobs. The grader measures first; the kernel is told where to find its
measurements by the environment variable `ENV` (set before the kernel starts), and reads them when a
test cell asks for a run, instead of running the answer again. The file is written just before the
kernel's first test cell (`before_first_test`), so no cell before it, where the learner's code runs,
can see it.

The file: JSON `{"schema": SCHEMA, "runs": {run key: IsolatedRun fields}}`, written whole or not at
all. A reader that finds another schema, or no file, measures for itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from . import cells

ENV = "LEAKLAB_VERDICTS"
SCHEMA = 2  # 2: runs carry a `reason`; `destroyed_pending` is gone


def run_key(job: dict) -> str:
    """A run's key; blank lines around the source do not count (IPython drops leading ones)."""
    return hashlib.sha256(json.dumps({**job, "source": job["source"].strip()}, sort_keys=True).encode()).hexdigest()


def publish(path: Path, runs: Callable[[], dict[str, dict]], *, after: threading.Event | None = None) -> None:
    """Write `runs()` where a kernel told `ENV=path` looks for them; with `after`, once it is set
    (the grader's own run is over)."""
    if after is not None:
        after.wait()
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps({"schema": SCHEMA, "runs": runs()}), encoding="utf-8")
    partial.replace(path)


def published() -> dict[str, dict]:
    """The runs the grader handed this process, by key ({} outside a grading kernel)."""
    path = os.environ.get(ENV)
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("runs"), dict):
        return {}
    return data["runs"]


def before_first_test(action: Callable[[], None]) -> Callable[..., Awaitable[None]]:
    """An nbclient `on_cell_execute` hook that runs `action` once, just before the first test cell."""
    done: list[bool] = []

    async def hook(cell: dict, cell_index: int) -> None:
        if not done and cells.is_test(cell):
            done.append(True)
            await asyncio.to_thread(action)

    return hook
