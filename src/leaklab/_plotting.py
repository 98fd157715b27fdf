"""One figure per comparison: task/thread counts above, memory below, runs overlaid on one time axis."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from ._recording import Recording
from ._repo import artefacts_dir

_MIB = 1024 * 1024


@dataclass
class Plot:
    """A figure saved as a PNG; a notebook shows that PNG, so the figure is drawn only once."""

    figure: Figure
    path: Path

    def _repr_png_(self) -> bytes:
        return self.path.read_bytes()


_TIME_AXIS = "time since start (ms; a millisecond stands for the article's second)"


def plot_runs(*runs: Recording, title: str, save: Path | str | None = None, xlabel: str = _TIME_AXIS) -> Plot:
    """Overlay runs (say, the leak and its fix) in one figure, saved as a PNG and shown inline.

    The PNG goes to `save`, or to the artefacts folder under a name made from the title. `xlabel`
    says what the time axis stands for, where it is not the usual millisecond-for-a-second.
    """
    if not runs:
        raise ValueError("plot_runs needs at least one Recording")
    figure = Figure(figsize=(8, 5.5))
    # Fixed margins, room for five-digit ticks: a layout engine would cost a third of the drawing.
    figure.subplots_adjust(left=0.09, right=0.98, top=0.95, bottom=0.09, hspace=0.08)
    counts, memory = figure.subplots(2, 1, sharex=True)
    for index, run in enumerate(runs):
        colour = f"C{index}"
        if any(run.tasks) or not any(run.threads):
            counts.step(run.times_ms, run.tasks, where="post", color=colour, label=f"{run.label}: tasks")
        if any(run.threads):
            counts.step(
                run.times_ms, run.threads, where="post", color=colour, linestyle="--", label=f"{run.label}: threads"
            )
        heap = [b / _MIB for b in run.heap_bytes]
        memory.plot(run.memory_times_ms, heap, color=colour, label=f"{run.label}: heap (memray)")
    counts.set_ylabel("live tasks / threads (count)")
    counts.set_title(title)
    counts.legend(loc="upper left", fontsize="small")
    counts.grid(alpha=0.3)
    memory.set_ylabel("heap held (MiB)")
    memory.set_xlabel(xlabel)
    memory.legend(loc="upper left", fontsize="small")
    memory.grid(alpha=0.3)
    path = Path(save) if save is not None else artefacts_dir("plots") / (_slug(title) + ".png")
    figure.savefig(path, dpi=90)
    return Plot(figure, path)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "plot"
