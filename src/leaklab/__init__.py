"""leaklab: see concurrency leaks happen, measure them, and check that a fix really fixes them.

Names are loaded on first use, so that a process which needs one piece (a grading run, the CLI)
does not pay for matplotlib or memray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Census",
    "DumpServer",
    "IsolatedRun",
    "LeakError",
    "Plot",
    "Recorder",
    "Recording",
    "format_groups",
    "group_stacks",
    "no_leaks",
    "plot_runs",
    "run_isolated",
    "serve_dump",
    "show_source",
    "task_dump",
]

_HOMES = {
    "Census": "_census",
    "IsolatedRun": "grading.isolation",
    "run_isolated": "grading.isolation",
    "LeakError": "_leakcheck",
    "no_leaks": "_leakcheck",
    "Recorder": "_recording",
    "Recording": "_recording",
    "Plot": "_plotting",
    "plot_runs": "_plotting",
    "format_groups": "_stacks",
    "group_stacks": "_stacks",
    "DumpServer": "_dump",
    "serve_dump": "_dump",
    "task_dump": "_dump",
    "show_source": "_source",
}

if TYPE_CHECKING:
    from ._census import Census
    from ._dump import DumpServer, serve_dump, task_dump
    from ._leakcheck import LeakError, no_leaks
    from ._plotting import Plot, plot_runs
    from ._recording import Recorder, Recording
    from ._source import show_source
    from ._stacks import format_groups, group_stacks
    from .grading.isolation import IsolatedRun, run_isolated


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'leaklab' has no attribute {name!r}")
    return getattr(importlib.import_module(f"leaklab.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
