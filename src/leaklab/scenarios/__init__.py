"""The leak scenarios: each module holds one story's leaky code, its traffic and its grading burst.

What every scenario module provides is declared in `_contract` (a Protocol, the probe's typed summary)
and checked by `load`; the grader and `leaklab run` reach scenarios only through these names.
"""

from __future__ import annotations

from ._contract import (
    DrawsTraffic,
    JudgedOutside,
    Probe,
    Runnable,
    Scenario,
    Summary,
    WarmsUp,
    answer_namespace,
    graded_properties,
    judged_together,
    load,
    names,
    runnable,
)

__all__ = [
    "DrawsTraffic",
    "JudgedOutside",
    "Probe",
    "Runnable",
    "Scenario",
    "Summary",
    "WarmsUp",
    "answer_namespace",
    "graded_properties",
    "judged_together",
    "load",
    "names",
    "runnable",
]
