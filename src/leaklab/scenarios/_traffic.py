"""Hidden bursts whose traffic Hypothesis draws: the mix, order and sizes of requests, jobs and calls
vary from answer to answer, so no answer can be tuned to one fixed list, and the same answer is always
graded on the same traffic (the seed is the run's own key).

The grader draws before the isolated child starts (the answer never runs where Hypothesis does) and
hands the child plain data. It draws in a fresh interpreter of its own (`drawn`): Hypothesis mixes in
constants from the source of every local module loaded, so the same seed drew different traffic in the
grader, in a kernel and under pytest; in a fresh `python -I` the modules loaded are always the same.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from .._errors import LeaklabError

T = TypeVar("T")

# Hypothesis begins with its simplest examples (every list at its shortest, every number at its least),
# the same for every seed: those are skipped. The near-simplest ones after them rarely have every case
# a burst needs (`covers`); skipping 60 instead cost lesson 01's draw 0.9 s of CPU a grade, not 0.1 s,
# and drew no more varied bursts (20 seeds: 20 different bursts either way).
_SIMPLEST = 5


def draw(strategy: Any, seed: int, covers: Callable[[T], bool] = lambda _: True) -> T:
    """The first example of `strategy` that `covers` every case a burst must have, for `seed`, past the
    simplest ones. Generation only: no example database, no shrinking, no timing health checks that a
    loaded machine could trip."""
    from hypothesis import HealthCheck, Phase, find, settings

    quiet = settings(
        database=None,
        phases=[Phase.generate],
        max_examples=5000,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    tried = itertools.count(1)
    return find(
        strategy, lambda drawn: next(tried) > _SIMPLEST and covers(drawn), settings=quiet, random=random.Random(seed)
    )


def drawn(scenario: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """`scenario`'s `traffic(seed, **options)`, drawn in a fresh interpreter (its own empty folder for
    Hypothesis's files): the same in every process that asks."""
    request = json.dumps({"scenario": scenario, "seed": seed, "options": options})
    with tempfile.TemporaryDirectory(prefix="leaklab-traffic-") as home:
        env = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": home}
        done = subprocess.run(
            [sys.executable, "-I", "-m", __name__], input=request, capture_output=True, text=True, cwd=home, env=env
        )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LeaklabError(f"drawing the traffic of {scenario} failed: {last}")
    return json.loads(done.stdout)


def _main() -> None:
    from . import load

    asked = json.loads(sys.stdin.read())
    scenario = load(asked["scenario"])
    print(json.dumps(scenario.traffic(asked["seed"], **asked["options"])))  # type: ignore[attr-defined]


if __name__ == "__main__":
    _main()
