"""Timing figures for the README: print them, never assert them (a loaded machine must not fail a build).

Run with `make bench`. Each figure is the median of several runs on this machine.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
GOAL_S = 6.0
GOALS_S = {"08_week_in_production": 15.0}  # the capstone replays a whole simulated week


def median_seconds(action) -> tuple[float, float, float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as folder:
        NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": folder}}).execute()


def grade(path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "leaklab._cli", "grade", "--json", str(path)], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"leaklab grade failed:\n{done.stderr}")


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {RUNS} runs")
    print(f"{'what':58} {'median':>7} {'min':>7} {'max':>7}  goal")
    for solution in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        for label, action in (
            ("execute (kernel start included)", execute),
            ("leaklab grade (CLI, one notebook)", grade),
        ):
            goal = GOALS_S.get(solution.stem, GOAL_S)
            med, low, high = median_seconds(lambda: action(solution))  # noqa: B023
            verdict = "met" if med <= goal else "MISSED"
            print(f"{solution.stem + ': ' + label:58} {med:6.2f}s {low:6.2f}s {high:6.2f}s  <= {goal:g} s {verdict}")


if __name__ == "__main__":
    main()
