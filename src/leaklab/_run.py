"""`leaklab run`: a scenario's leak, live and headless, for an instructor's screen.

Each scenario module that has a leak to show defines `leaky_rounds(rounds)`, an async generator that
runs one round of its leaky workload per step (`leaklab.scenarios.Runnable`, in the scenario contract).
Between rounds the live tasks, threads and resident memory are printed; the task dump can be served
meanwhile; the plot and memray's view come at the end.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from ._errors import LeaklabError
from ._i18n import _
from .scenarios import Runnable, load, runnable


def runnable_scenarios() -> list[str]:
    """The scenario modules that have a leak to run (a `leaky_rounds` generator), by the scenario contract."""
    return runnable()


def _scenario(name: str) -> Runnable:
    known = runnable_scenarios()
    slug = name.split("_", 1)[1] if name[:2].isdigit() and "_" in name else name  # "01_forgotten_cancel" works too
    if slug not in known:
        raise LeaklabError(_("no scenario named {name!r}; scenarios: {known}", name=name, known=", ".join(known)))
    return load(slug)  # type: ignore[return-value]  # in `runnable()`: it has `leaky_rounds`


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _hold(seconds: float) -> None:
    """Wait `seconds`, waking ten times a second: Ctrl-C is handled by the main thread when it runs Python
    code, and a SIGINT the kernel handed to another thread (a leaked one) does not wake the loop's wait."""
    until = time.monotonic() + seconds
    while True:  # a clock to wait for, nothing to await but time
        left = until - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(0.1, left))


async def run_scenario(
    name: str,
    *,
    rounds: int = 10,
    pause_s: float = 0.1,
    dump_port: int | None = None,
    hold_s: float = 0.0,
    plot: Path | None = None,
    flamegraph: Path | None = None,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
) -> int:
    """Run `rounds` rounds of a scenario's leak, printing counts as it goes; returns the tasks and
    threads left alive at the end (a leak shows as a number above zero)."""
    from ._dump import serve_dump
    from ._plotting import plot_runs
    from ._recording import Recorder

    scenario = _scenario(name)
    server = serve_dump(port=dump_port) if dump_port is not None else None
    leak = scenario.leaky_rounds(rounds)
    try:
        if server:
            grouped = f"{server.url}?debug=1"
            say(_("task dump: curl '{url}'  (every stack: ?debug=2)", url=grouped))
        recorder = Recorder(name).start()
        for number in range(1, rounds + 1):
            what = await anext(leak)  # not `async for`: the generator's clean-up must wait for `aclose()`
            tasks, threads = recorder.counts()
            say(
                _(
                    "round {number:>3}/{rounds}  tasks {tasks:>5}  threads {threads:>4}  "
                    "resident {resident:7.1f} MiB  | {what}",
                    number=number,
                    rounds=rounds,
                    tasks=tasks,
                    threads=threads,
                    resident=_resident_mib(),
                    what=what,
                )
            )
            await asyncio.sleep(pause_s)
        if server and hold_s > 0:
            grouped = f"{server.url}?debug=1"
            # TRANSLATORS: keep the address last: a script reads it off the end of the line.
            say(_("serving the task dump for {seconds:g} s more: {url}", seconds=hold_s, url=grouped))
            await _hold(hold_s)
        recording = recorder.stop()
    finally:
        await leak.aclose()
        if server:
            server.stop()
    say("")
    say(recording.leftover_report)
    say("")
    say(recording.held_by())
    if plot is not None:
        plot_runs(recording, title=f"leaklab run {name}", save=plot)
        say(_("plot written to {path}", path=plot))
    if flamegraph is not None:
        say(_("memray flame graph of what is still held written to {path}", path=recording.flamegraph(flamegraph)))
    return recording.leftover_tasks + recording.leftover_threads
