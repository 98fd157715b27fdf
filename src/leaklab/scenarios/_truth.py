"""The grader's own truth in a scenario module (a diagnosis's answer, measured or kept): for its hidden
tests to read, not for a learner's cells. While a values run has the learner's cells run
(`learner_cells`), each read of it from outside its own module is noted, and the run ends as tampered."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

Function = TypeVar("Function", bound=Callable[..., Any])

_reads: list[str] | None = None  # while the learner's cells run: the truths they read, by name


def graders_truth(function: Function) -> Function:
    """Mark `function` as the grader's truth: a call from outside its module, while the learner's cells run,
    is noted (the module's own visible checks may use it: they never print it)."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        note(function.__module__, function.__name__, sys._getframe(1))
        return function(*args, **kwargs)

    del guarded.__wrapped__  # type: ignore[attr-defined]  # no way round the note that `wraps` would give
    return guarded  # type: ignore[return-value]


def note(module: str, name: str, caller: FrameType) -> None:
    """Note a read of `module`'s truth `name` by the code running in `caller`, unless that is the module's own."""
    if _reads is not None and caller.f_globals.get("__name__") != module:
        _reads.append(f"{module.rsplit('.', 1)[-1]}.{name}")


@contextmanager
def learner_cells() -> Iterator[list[str]]:
    """While the block runs the learner's cells: the grader's truths they read (empty: none)."""
    global _reads
    _reads = found = []
    try:
        yield found
    finally:
        _reads = None
