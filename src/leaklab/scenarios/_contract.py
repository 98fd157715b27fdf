"""What a scenario module promises the grader's isolated child and `leaklab run`, declared in one place.

Both used to find a scenario's parts by name far away (`__all__`, `hasattr(module, "leaky_rounds")`);
here they are a Protocol, a typed summary and one `load` that refuses a module lacking a part, so a
scenario that drifts fails its conformance test (tests/unit/test_scenario_contract.py), not a grading run.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any, Protocol, TypedDict, runtime_checkable

from .._errors import LeaklabError


class Summary(TypedDict, total=False):
    """What `summary()` returns after (or during) a burst. Every other key is a graded property, as
    `[passed, out of]`; `IsolatedRun.require` reads them, and these, from the child's result."""

    problems: list[str]  # what went wrong, each line "<property with spaces>: what": the first are shown
    requests: int  # requests sent: the unit of counts and of retained memory (bytes per request)
    answered: int  # requests that got an answer: fewer than `requests` fails with where the rest wait
    units: dict[str, str]  # property -> what it counts ("calls", "checks") where that is not requests
    unfinished: str  # what a burst that did not finish most likely waits in, for the "never checked" message
    # what a call started and left running long after it had ended, one line each: `require_no_leftovers`
    outlived_their_call: list[str]


Probe = tuple[Awaitable[object], Callable[[], Summary]]  # the burst to await, and its summary


@runtime_checkable
class Scenario(Protocol):
    """A scenario module as the grader uses it. Modules define ANSWER_NAMES at their end: the lessons'
    task dumps (and LEAK_LINE) cite line numbers in them, so the contract moved none."""

    ANSWER: str  # the name the task asks the answer cell to define (`handle_request`, `Worker`)
    ANSWER_NAMES: tuple[str, ...]  # given to the answer cell's namespace (not `__all__`: that is Python's)

    def probe(self, handler: Any, /, **options: Any) -> Probe:
        """The grading burst against the learner's `handler`; `options` come from the test cell."""
        ...


@runtime_checkable
class WarmsUp(Scenario, Protocol):
    """A scenario whose first use allocates: a short burst is run before memory is measured. Only its
    allocations are left out: its calls are judged with the burst's (its summary is added to the burst's),
    and what it leaves pending is left behind like anything else."""

    def warm_up(self, handler: Any, /) -> Probe: ...


@runtime_checkable
class DrawsTraffic(Scenario, Protocol):
    """A scenario whose hidden bursts can be drawn by Hypothesis (a test cell's `traffic="generated"`):
    `traffic` turns a seed and the test cell's options into the probe's options, as plain data."""

    def traffic(self, seed: int, /, **options: Any) -> dict[str, Any]: ...


@runtime_checkable
class JudgedOutside(Scenario, Protocol):
    """A scenario with an answer key the answer's process must never hold (lesson 07's marked snippets):
    the child gets `sealed(**options)`, the probe reports what the answer said, and the grader's own
    process turns that into the graded properties with `judge(outcome, **options)`."""

    def sealed(self, /, **options: Any) -> dict[str, Any]: ...

    def judge(self, outcome: dict[str, Any], /, **options: Any) -> dict[str, Any]: ...


@runtime_checkable
class Runnable(Scenario, Protocol):
    """A scenario with a leak to show live (`leaklab run`): one short line of text per round."""

    def leaky_rounds(self, rounds: int, /) -> AsyncIterator[str]: ...


_RESERVED = Summary.__optional_keys__ | Summary.__required_keys__


def names() -> list[str]:
    """Every scenario module, by slug (private helpers such as `_checks` are not scenarios)."""
    found = pkgutil.iter_modules(importlib.import_module(__package__).__path__)
    return sorted(m.name for m in found if not m.name.startswith("_"))


def _import(name: str) -> ModuleType:
    unknown = LeaklabError(f"no scenario named {name!r}; scenarios: {', '.join(names())}")
    if not name.isidentifier() or name.startswith("_"):
        raise unknown
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.{name}":  # a scenario that fails to import is a bug, not a typo
            raise
        raise unknown from None


def load(name: str) -> Scenario:
    """Import scenario `name` and check it keeps the contract; LeaklabError if there is no such scenario,
    TypeError naming every missing or wrong part if the module does not conform."""
    module = _import(name)
    wrong: list[str] = []
    answer_names = getattr(module, "ANSWER_NAMES", None)
    if answer_names is None:
        wrong.append("no ANSWER_NAMES (a tuple of the names an answer cell may use)")
    elif not isinstance(answer_names, tuple) or not all(isinstance(n, str) for n in answer_names):
        wrong.append(f"ANSWER_NAMES must be a tuple of str, not {answer_names!r:.60}")
    else:
        missing = [n for n in answer_names if not hasattr(module, n)]
        if missing:
            wrong.append(f"ANSWER_NAMES lists names the module does not define: {', '.join(missing)}")
    if not str(getattr(module, "ANSWER", "")).isidentifier():
        wrong.append("no ANSWER (the name the answer cell defines, a str)")
    if not callable(getattr(module, "probe", None)):
        wrong.append("no probe(handler, **options) function")
    for optional in ("warm_up", "leaky_rounds", "traffic", "sealed", "judge"):
        if hasattr(module, optional) and not callable(getattr(module, optional)):
            wrong.append(f"{optional} is not a function")
    if wrong:
        raise TypeError(f"{module.__name__} does not keep the scenario contract: {'; '.join(wrong)}")
    return module  # type: ignore[return-value]  # checked above: a module is a Scenario structurally


def answer_namespace(scenario: Scenario) -> dict[str, object]:
    """The names an answer cell may use without importing them, by the scenario's own list."""
    return {name: getattr(scenario, name) for name in scenario.ANSWER_NAMES}


def runnable() -> list[str]:
    """The scenarios with a leak to show (`leaky_rounds`), by slug."""
    return [name for name in names() if isinstance(load(name), Runnable)]


def graded_properties(summary: Mapping[str, object]) -> dict[str, tuple[int, int]]:
    """The graded properties of a summary as (passed, out of); TypeError for a key that is neither
    one of Summary's own nor such a pair, so a scenario's summary is checked as declared."""
    graded: dict[str, tuple[int, int]] = {}
    for key, value in summary.items():
        if key in _RESERVED:
            continue
        if not (isinstance(value, list | tuple) and len(value) == 2 and all(type(v) is int for v in value)):
            raise TypeError(f"summary key {key!r} is not a graded property [passed, out of]: {value!r:.60}")
        graded[key] = (value[0], value[1])
    return graded


def judged_together(burst: Mapping[str, Any], warm_up: Mapping[str, Any]) -> dict[str, Any]:
    """The burst's summary with the warm-up's calls counted in, as one traffic: each graded property's
    passed and out of, the requests sent and answered, the warm-up's problems first (they came first).
    A property the burst never reached stays unreached; the burst's `units` are kept."""
    together = dict(burst)
    for key, (passed, out_of) in graded_properties(warm_up).items():
        if key in burst:
            burst_passed, burst_out_of = burst[key]
            together[key] = [burst_passed + passed, burst_out_of + out_of]
    for key in ("requests", "answered"):
        if key in warm_up:
            together[key] = burst.get(key, 0) + warm_up[key]
    together["problems"] = [*warm_up.get("problems", []), *burst.get("problems", [])]
    return together
