"""The grader-to-kernel hand-off: the grader's own measurements, shown by the kernel's test cells.

Both runs of a submission's tests (the grader's own, and the kernel's, see `core`) call
`run_isolated` with the same jobs. The grader measures first; the kernel is told where to find its
measurements by the environment variable `ENV` (set before the kernel starts), and reads them when a
test cell (or the verify cell before the tests) asks for a run, instead of running the answer again. The
file is written just after the last answer cell has run (`before_first_test`), so no cell up to it,
where the learner's code runs, can see it; cells a learner adds after it could read it, but the kernel's
run can only take points away.

The kernel never gets the hidden tests (`kernel_version`): in its copy of the lesson, each test cell's
hidden part is a call to `hidden_part`, which shows the grader's own verdict on that test.

The file: JSON `{"schema": SCHEMA, "runs": {run key: IsolatedRun fields}, "tests": {grade id:
{"passed": bool, "message": str}}}`, written whole or not at all. A reader that finds another schema,
or no file, measures for itself (and `hidden_part` passes: the kernel's run can only take points away).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from . import cells

ENV = "LEAKLAB_VERDICTS"
# Set to "data" for the kernel too: `plot_runs` then shows a figure's data as `PLOT_MIME`, and the grader
# draws it where a page shows it (`kernel.drawn`), with matplotlib it has already loaded.
PLOTS_ENV = "LEAKLAB_PLOTS"
PLOT_MIME = "application/vnd.leaklab.plot+json"
SCHEMA = 3  # 2: runs carry a `reason`, `destroyed_pending` is gone; 3: the tests' verdicts


def run_key(job: dict) -> str:
    """A run's key; blank lines around the source do not count (IPython drops leading ones)."""
    return hashlib.sha256(json.dumps({**job, "source": job["source"].strip()}, sort_keys=True).encode()).hexdigest()


def publish(
    path: Path,
    runs: Callable[[], dict[str, dict]],
    tests: Callable[[], dict[str, dict]] = dict,
    *,
    after: threading.Event | None = None,
) -> None:
    """Write `runs()` and `tests()` where a kernel told `ENV=path` looks for them; with `after`, once it
    is set (the grader's own run is over)."""
    if after is not None:
        after.wait()
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps({"schema": SCHEMA, "runs": runs(), "tests": tests()}), encoding="utf-8")
    partial.replace(path)


def _read() -> dict:
    path = os.environ.get(ENV)
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else {}


def published() -> dict[str, dict]:
    """The runs the grader handed this process, by key ({} outside a grading kernel)."""
    runs = _read().get("runs")
    return runs if isinstance(runs, dict) else {}


def hidden_part(grade_id: str) -> None:
    """In the grading kernel, where a test cell's hidden tests were: fail as the grader's own run failed
    that test (its message, never its code), or pass."""
    verdict = (_read().get("tests") or {}).get(grade_id)
    if isinstance(verdict, dict) and not verdict.get("passed", True):
        raise AssertionError(f"hidden tests: {verdict.get('message') or 'failed'}")


def kernel_version(source: dict) -> dict:
    """The lesson as the kernel runs it: each test cell's hidden part replaced by `hidden_part`."""
    nb = copy.deepcopy(source)
    for cell in nb["cells"]:
        if cells.is_test(cell):
            call = f"import leaklab.grading.handoff\n\nleaklab.grading.handoff.hidden_part({cells.grade_id(cell)!r})\n"
            cell["source"] = cells.HIDDEN_TESTS.sub(lambda _, call=call: call, cells.text(cell))
    return nb


def last_answer(source: dict) -> str | None:
    """The grade id of the lesson's last answer cell: the handed-off runs are shown from the cell after it."""
    answers = [cells.grade_id(cell) for cell in source["cells"] if cells.is_answer(cell)]
    return answers[-1] if answers else None


def before_first_test(action: Callable[[], None], after_answer: str | None = None) -> Callable[..., Awaitable[None]]:
    """An nbclient `on_cell_execute` hook that runs `action` once, just before the first test cell, or
    before the first cell after the answer cell `after_answer` if that comes sooner: the lesson's verify
    cell then shows the grader's own measurement instead of measuring the answer again in the kernel (a
    second run of the same job, and one whose isolated child is the kernel's: an answer that kills its
    parent would take the kernel with it)."""
    done: list[bool] = []
    answered: list[bool] = []

    async def hook(cell: dict, cell_index: int) -> None:
        if not done and (answered or cells.is_test(cell)):
            done.append(True)
            await asyncio.to_thread(action)
        if after_answer is not None and cells.grade_id(cell) == after_answer:
            answered.append(True)

    return hook
