"""One timed run of a scenario's leaky traffic, with or without memray: a child process of bench.py.

    python tests/benchmarks/_traffic.py SCENARIO ROUNDS {off,memray,recorder} CAPTURE_DIR

Each run gets a fresh process because the traffic leaks on purpose: a second run in the same process
would start among the first one's leftovers. It drives `leaky_rounds(rounds)` the way `leaklab run`
does (one `anext` per round, `aclose` at the end) and prints one JSON object, the wall and CPU seconds
of the rounds alone. The modes:
- `off`: no tracking at all;
- `memray`: memray's Tracker set up and started exactly as `leaklab.Recorder` starts it;
- `recorder`: a whole `leaklab.Recorder` (memray plus its task and thread sampler), as `leaklab run` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import memray

MODES = ("off", "memray", "recorder")


@contextlib.contextmanager
def tracking(mode: str, capture_dir: Path) -> Iterator[None]:
    """The tracking of one mode, started before the traffic's first round and stopped after its last."""
    from leaklab import Recorder

    if mode == "off":
        yield
    elif mode == "recorder":
        os.environ["LEAKLAB_ARTEFACTS"] = str(capture_dir)  # its capture goes where the bench cleans up
        with Recorder("bench"):
            yield
    else:
        # Recorder's own settings, read from it so that the two cannot drift apart.
        tracker = memray.Tracker(
            destination=memray.FileDestination(capture_dir / "bench.bin", overwrite=True),
            memory_interval_ms=Recorder("bench").memory_interval_ms,
        )
        # Started from a thread of its own, as Recorder does (so that memray records full stacks).
        starter = threading.Thread(target=tracker.__enter__)
        starter.start()
        starter.join()
        try:
            yield
        finally:
            tracker.__exit__(None, None, None)


async def timed_rounds(scenario: str, rounds: int, mode: str, capture_dir: Path) -> dict[str, float]:
    """Wall and CPU seconds of `rounds` rounds of the scenario's leaky traffic under `mode`."""
    module = importlib.import_module(f"leaklab.scenarios.{scenario}")
    leak = module.leaky_rounds(rounds)
    try:
        with tracking(mode, capture_dir):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(rounds):
                await anext(leak)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await leak.aclose()
    return {"wall": wall, "cpu": cpu}


def main() -> None:
    scenario, rounds, mode, capture_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    print(json.dumps(asyncio.run(timed_rounds(scenario, rounds, mode, capture_dir))))


if __name__ == "__main__":
    main()
