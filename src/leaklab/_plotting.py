"""One figure per comparison: task/thread counts above, memory below, runs overlaid on one time axis.

Drawn to read in grey as well as in colour: each run has its own colour from the Okabe-Ito palette
(safe for the common colour-blindnesses) and its own line style; within a run, markers tell the
quantities apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from ._recording import Recording
from ._repo import artefacts_dir

if TYPE_CHECKING:
    from .grading.isolation import Verdict

_MIB = 1024 * 1024
_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")  # Okabe & Ito
_RUN_STYLES = ("-", "--", "-.", ":")
_SERIES_MARKERS = ("s", "D", "x", "P")  # tasks plain, threads "^", further counts these
_FAILED, _PASSED = "#D55E00", "#0072B2"


@dataclass
class Plot:
    """A figure saved as a PNG; a notebook shows that PNG, so the figure is drawn only once."""

    figure: Figure
    path: Path

    def _repr_png_(self) -> bytes:
        return self.path.read_bytes()


_TIME_AXIS = "time since start (ms; a millisecond stands for the article's second)"


def plot_runs(
    *runs: Recording,
    title: str,
    save: Path | str | None = None,
    xlabel: str = _TIME_AXIS,
    markers: Sequence[tuple[float, str]] = (),
    threshold: tuple[float, str] | None = None,
    rss: bool = False,
    verdict: Verdict | None = None,
) -> Plot:
    """Overlay runs (say, the leak and its fix) in one figure, saved as a PNG and shown inline.

    The PNG goes to `save`, or to the artefacts folder under a name made from the title. `xlabel`
    says what the time axis stands for, where it is not the usual millisecond-for-a-second.
    `markers` are `(ms, label)` moments drawn across both axes (an alert, the burst's end, a day);
    `threshold` a `(count, label)` line on the counts. `rss` draws each run's resident-set growth
    beside its heap: process memory, the figure a service's dashboard shows. `verdict` (a verify
    cell's) heads the figure, so a figure never looks like success for an answer that fails.
    """
    if not runs:
        raise ValueError("plot_runs needs at least one Recording")
    figure = Figure(figsize=(10.5, 5.8 if verdict is not None else 5.5))
    # Fixed margins, room for five-digit ticks: a layout engine would cost a third of the drawing.
    top = 0.91 if verdict is not None else 0.95
    # The legends sit right of the axes: inside, they would hide the lines and the markers' labels.
    figure.subplots_adjust(left=0.07, right=0.69, top=top, bottom=0.09, hspace=0.08)
    counts, memory = figure.subplots(2, 1, sharex=True)
    for index, run in enumerate(runs):
        look = {"color": _PALETTE[index % len(_PALETTE)], "linestyle": _RUN_STYLES[index % len(_RUN_STYLES)]}
        if any(run.tasks) or not any(run.threads):
            counts.step(run.times_ms, run.tasks, where="post", label=f"{run.label}: tasks", **look)
        if any(run.threads):
            counts.plot(
                run.times_ms,
                run.threads,
                drawstyle="steps-post",
                marker="^",
                markevery=_every(run.times_ms),
                label=f"{run.label}: threads",
                **look,
            )
        for (name, values), marker in zip(run.series.items(), _SERIES_MARKERS, strict=False):
            counts.plot(
                run.times_ms,
                values,
                drawstyle="steps-post",
                marker=marker,
                markevery=_every(run.times_ms),
                label=f"{run.label}: {name}",
                **look,
            )
        heap = [b / _MIB for b in run.heap_bytes]
        memory.plot(run.memory_times_ms, heap, label=f"{run.label}: heap (memray)", **look)
        if rss and run.rss_bytes:
            grown = [(b - run.rss_bytes[0]) / _MIB for b in run.rss_bytes]
            memory.plot(
                run.memory_times_ms,
                grown,
                marker="v",
                markevery=_every(run.memory_times_ms),
                label=f"{run.label}: RSS growth (process)",
                **look,
            )
    if threshold is not None:
        value, label = threshold
        counts.axhline(value, color="black", linestyle=(0, (6, 3)), linewidth=1.2, label=label)
    for axis in (counts, memory):
        for at_ms, _ in markers:
            axis.axvline(at_ms, color="black", linestyle=(0, (1, 2)), linewidth=1.2)
    on_top = blended_transform_factory(counts.transData, counts.transAxes)
    for at_ms, label in markers:
        counts.text(
            at_ms,
            0.97,
            label,
            transform=on_top,
            rotation=90,
            va="top",
            ha="center",
            fontsize="small",
            zorder=5,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.5},
        )
    counts.set_ylabel("live tasks / threads (count)")
    counts.set_title(title)
    counts.legend(**_BESIDE)
    counts.grid(alpha=0.3)
    memory.set_ylabel("memory held since start (MiB)" if rss else "heap held (MiB)")
    memory.set_xlabel(xlabel)
    memory.legend(**_BESIDE)
    memory.grid(alpha=0.3)
    if verdict is not None:
        colour = _PASSED if verdict.passed else _FAILED
        figure.text(0.5, 0.985, verdict.headline, ha="center", va="top", color=colour, weight="bold")
    path = Path(save) if save is not None else artefacts_dir("plots") / (_slug(title) + ".png")
    figure.savefig(path, dpi=90)
    return Plot(figure, path)


_BESIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0, "fontsize": "small"}


def _every(times: Sequence[float]) -> int:
    """Markers on about a dozen samples of a line, enough to tell it apart in grey."""
    return max(1, len(times) // 12)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "plot"
