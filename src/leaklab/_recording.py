"""Record a workload: live tasks, live threads and memory (from memray) on one time axis.

The counts come from a sampler thread that looks every few milliseconds; memory comes from memray's
own snapshots of the heap and the resident set, written to a capture file per run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import memray

from ._census import Census
from ._i18n import _
from ._repo import artefacts_dir
from ._stacks import _short, format_groups, group_stacks

_MACHINERY = (sysconfig.get_paths()["stdlib"] + "/", str(Path(__file__).parent / "_"), "<frozen")


def _is_machinery(path: str) -> bool:
    """The standard library's and leaklab's own instruments: not where a learner's memory is held."""
    return path.startswith(_MACHINERY)


@dataclass
class Recording:
    """One run of a workload: counts and memory over time, and what was left alive at its end."""

    label: str
    capture: Path
    # Sampled counts: milliseconds since the start, and the live tasks and threads the run started.
    times_ms: list[float] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    # Further counts sampled at the same moments (`Recorder(counts=...)`): open sockets, a monitor's total.
    series: dict[str, list[int]] = field(default_factory=dict)
    # memray's snapshots: milliseconds since the start, bytes on the heap and resident.
    memory_times_ms: list[float] = field(default_factory=list)
    heap_bytes: list[int] = field(default_factory=list)
    rss_bytes: list[int] = field(default_factory=list)
    leftover_tasks: int = 0
    leftover_threads: int = 0
    leftover_report: str = ""

    @property
    def heap_growth_bytes(self) -> int:
        """Heap still held at the end that was not held at the start."""
        return self.heap_bytes[-1] - self.heap_bytes[0] if self.heap_bytes else 0

    def held_by(self, *, top: int = 5) -> str:
        """Which lines allocated the memory still held when the run ended (memray's leaks), biggest first.

        Each allocation is charged to the innermost frame outside the standard library, where a
        learner can act: the line of the handler or worker that allocated it.
        """
        held: dict[str, list[int]] = {}
        reader = memray.FileReader(self.capture)
        for record in reader.get_leaked_allocation_records(merge_threads=True):
            frames = record.stack_trace()
            own = next((f for f in frames if not _is_machinery(f[1])), frames[0] if frames else None)
            where = f"{own[0]}  {_short(own[1])}:{own[2]}" if own else _("(no Python frame: the interpreter's own)")
            size, count = held.get(where, [0, 0])
            held[where] = [size + record.size, count + record.n_allocations]
        biggest = sorted(held.items(), key=lambda item: -item[1][0])[:top]
        lines = [_("{label}: memory still held at the end, by the line that allocated it", label=self.label)]
        lines += [
            _("{size:10.1f} KiB in {count:6d} blocks", size=size / 1024, count=count) + f"  {where}"
            for where, (size, count) in biggest
        ]
        return "\n".join(lines)

    def flamegraph(self, path: Path | str | None = None) -> Path:
        """memray's flame graph of the memory still held at the end (what leaked tasks and threads hold).

        A self-contained HTML file (`--no-web`: it works offline); open it in the browser.
        """
        output = Path(path) if path is not None else self.capture.with_suffix(".leaks.html")
        command = [sys.executable, "-m", "memray", "flamegraph", "--leaks", "--no-web", "-f", "-o", str(output)]
        done = subprocess.run([*command, str(self.capture)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"memray flamegraph failed: {done.stderr.strip() or done.stdout.strip()}")
        return output


class Recorder:
    """Record the tasks, threads and memory of whatever runs between `start()` and `stop()`.

    Use it as `with Recorder("leaky") as rec:` (or `async with`), then read `rec.recording`.
    Only one recorder may run at a time in a process: memray tracks one capture at a time.
    `counts` adds quantities sampled with the tasks and threads (`{"open sockets": count_sockets}`); they
    are called from the recorder's own thread, so they must not need the event loop.
    """

    def __init__(
        self,
        label: str,
        *,
        interval_ms: float = 5.0,
        memory_interval_ms: int = 5,
        counts: Mapping[str, Callable[[], int]] | None = None,
    ) -> None:
        self.label = label
        # More quantities to sample beside tasks and threads, by name; called from the sampler's own thread.
        self.counts_of = dict(counts or {})
        self.interval_ms = interval_ms
        self.memory_interval_ms = memory_interval_ms
        self.recording: Recording | None = None
        self._tracker: memray.Tracker | None = None
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> Recorder:
        """Take the baseline, start memray and the sampler."""
        if self._tracker is not None:
            raise RuntimeError(f"recorder {self.label!r} is already running")
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label) or "run"
        capture = artefacts_dir("captures") / f"{slug}-{os.getpid()}-{time.time_ns()}.bin"
        self.recording = Recording(self.label, capture, series={name: [] for name in self.counts_of})
        self._census = Census.take()
        self.started_ms = time.time() * 1000  # the time axis' zero, in ms since the epoch: to mark events on it
        self._tracker = memray.Tracker(
            destination=memray.FileDestination(capture, overwrite=True),
            memory_interval_ms=self.memory_interval_ms,
        )
        # Started from a thread of its own: memray then reads this thread's stack as it stands, and
        # attributes later allocations to their full stacks; started here, in a function that returns
        # before the workload runs, it records them with no Python frame at all (memray 1.20).
        starter = threading.Thread(target=self._tracker.__enter__, name="leaklab-memray-start")
        starter.start()
        starter.join()
        self._sample()  # the start of the time axis, before the workload has run
        self._stop.clear()
        self._sampler = threading.Thread(target=self._sample_until_stopped, name="leaklab-sampler", daemon=True)
        self._sampler.start()
        return self

    def stop(self) -> Recording:
        """Stop sampling and tracking; read memray's capture; note what the run left alive."""
        if self._tracker is None or self.recording is None or self._sampler is None:
            raise RuntimeError(f"recorder {self.label!r} was not started")
        self._stop.set()
        self._sampler.join()
        self._sample()
        self._tracker.__exit__(None, None, None)
        self._tracker = None
        rec = self.recording
        for snapshot in memray.FileReader(rec.capture).get_memory_snapshots():
            rec.memory_times_ms.append(snapshot.time - self.started_ms)
            rec.heap_bytes.append(snapshot.heap)
            rec.rss_bytes.append(snapshot.rss)
        tasks, threads = self._leftovers()
        rec.leftover_tasks, rec.leftover_threads = len(tasks), len(threads)
        rec.leftover_report = format_groups(
            group_stacks(tasks, threads), title=_("{label}: left alive", label=self.label)
        )
        return rec

    def counts(self) -> tuple[int, int]:
        """The tasks and threads the workload has started that are alive now."""
        tasks, threads = self._leftovers()
        return len(tasks), len(threads)

    def _leftovers(self) -> tuple[list, list]:
        threads = [t for t in self._census.new_threads() if t is not self._sampler]
        return self._census.new_tasks(), threads

    def _sample(self) -> None:
        assert self.recording is not None
        tasks, threads = self._leftovers()
        further = {name: count() for name, count in self.counts_of.items()}  # all or none: lines stay aligned
        self.recording.times_ms.append(time.time() * 1000 - self.started_ms)
        self.recording.tasks.append(len(tasks))
        self.recording.threads.append(len(threads))
        for name, value in further.items():
            self.recording.series[name].append(value)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval_ms / 1000):
            self._sample()

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Recorder:
        return self.start()

    async def __aexit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
