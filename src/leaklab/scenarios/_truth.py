"""The grader's own truth in a scenario module (a diagnosis's answer, measured or kept): for its hidden
tests to read, not for a learner's cells. While a values run has the learner's cells run
(`learner_cells`), each read of it from outside its own module is noted, and the run ends as tampered; so is
each opening of the files of a module that guards its source (`guard_source`), where the truth is written."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

Function = TypeVar("Function", bound=Callable[..., Any])

_reads: list[str] | None = None  # while the learner's cells run: the truths they read, by name
_guarded: dict[str, str] = {}  # the real path of a guarded module's source or cached bytecode -> what to call it
_hooked = [False]  # whether `_opened` is one of this process's audit hooks (it cannot be taken off again)
_PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep  # leaklab's own folder
_SHOWING = ("warnings", "traceback")  # a warning or a traceback shown quotes a line of the file: not a read


def graders_truth(function: Function) -> Function:
    """Mark `function` as the grader's truth: a call from outside its module, while the learner's cells run,
    is noted (the module's own visible checks may use it: they never print it)."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        note(function.__module__, function.__name__, sys._getframe(1))
        return function(*args, **kwargs)

    del guarded.__wrapped__  # type: ignore[attr-defined]  # no way round the note that `wraps` would give
    return guarded  # type: ignore[return-value]


def guard_source(module: str) -> None:
    """Note, too, an opening of `module`'s own files (its source, its cached bytecode) while the learner's
    cells run: the truth is written there, as the grader's constants (a literal a cell could parse out)."""
    source = sys.modules[module].__file__
    if source is None:
        return
    called = f"{module.rsplit('.', 1)[-1]}.py"
    for path in (source, importlib.util.cache_from_source(source)):
        _guarded[os.path.realpath(path)] = called


def _opened(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: an open of a guarded file by the learner's cells is a read of the truth; code they
    compile or make under the file name of a leaklab module would pass for leaklab's own (`runs_own_code`)."""
    if _reads is None:
        return
    if event in ("compile", "code.__new__"):
        if isinstance(args[1], str) and os.path.realpath(args[1]).startswith(_PACKAGE) and not _importing():
            # A traceback printed from C (a thread's uncaught exception) parses its lines under their file's name.
            caller = sys._getframe(1)
            if not any(runs_own_code(caller, module) for module in ("threading", *_SHOWING)):
                _reads.append(f"{os.path.basename(args[1])} (code compiled under its name)")
        return
    if event != "open" or not isinstance(args[0], str | bytes | os.PathLike):
        return
    called = _guarded.get(os.path.realpath(os.fsdecode(args[0])))
    if called is None:
        return
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") in _SHOWING:
            return
        frame = frame.f_back
    _reads.append(f"{called} (its text)")


def runs_own_code(frame: FrameType, prefix: str) -> bool:
    """Whether `frame` runs the code of a loaded module whose name starts with `prefix`, by what the frame
    is rather than what it says: its globals are that module's and its code came from that module's file.
    A cell that names itself (`__name__ = "leaklab.x"`) is not leaklab; code compiled under a leaklab file
    name while the learner's cells run is noted by the audit hook (`_opened`)."""
    name = frame.f_globals.get("__name__")
    module = sys.modules.get(name) if isinstance(name, str) and name.startswith(prefix) else None
    file = getattr(module, "__file__", None)
    return module is not None and vars(module) is frame.f_globals and frame.f_code.co_filename == file


def _importing() -> bool:
    """Whether the import system is at work below the audited call: a leaklab module imported for the first
    time while the cells run is compiled from its own file."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def note(module: str, name: str, caller: FrameType) -> None:
    """Note a read of `module`'s truth `name` by the code running in `caller`, unless that is the module's own."""
    if _reads is not None and not runs_own_code(caller, module):
        _reads.append(f"{module.rsplit('.', 1)[-1]}.{name}")


@contextmanager
def learner_cells() -> Iterator[list[str]]:
    """While the block runs the learner's cells: the grader's truths they read (empty: none)."""
    global _reads
    if not _hooked[0]:
        sys.addaudithook(_opened)
        _hooked[0] = True
    _reads = found = []
    try:
        yield found
    finally:
        _reads = None
