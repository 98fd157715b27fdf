"""One figure per comparison: task/thread counts above, memory below, runs overlaid on one time axis."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ._recording import Recording, artefacts_dir

_MIB = 1024 * 1024


def plot_runs(*runs: Recording, title: str, save: Path | str | None = None) -> Figure:
    """Overlay runs (say, the leak and its fix) and save the figure as a PNG.

    The figure is returned so that a notebook shows it inline; it is saved to `save`, or to the
    artefacts folder under a name made from the title.
    """
    if not runs:
        raise ValueError("plot_runs needs at least one Recording")
    # Through pyplot so that Jupyter's inline backend knows how to show the figure; closed at once
    # so that pyplot does not keep every figure of the session.
    fig, (counts, memory) = plt.subplots(2, 1, sharex=True, figsize=(8, 5.5), layout="constrained")
    plt.close(fig)
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
    memory.set_xlabel("time since start (ms; a millisecond stands for the article's second)")
    memory.legend(loc="upper left", fontsize="small")
    memory.grid(alpha=0.3)
    path = Path(save) if save is not None else artefacts_dir("plots") / (_slug(title) + ".png")
    fig.savefig(path, dpi=100)
    return fig


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "plot"
