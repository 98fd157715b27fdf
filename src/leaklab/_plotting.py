"""One figure per comparison: task/thread counts above, memory below, runs overlaid on one time axis.

Drawn to read in grey as well as in colour: each run has its own colour from the Okabe-Ito palette
(safe for the common colour-blindnesses) and its own line style; within a run, markers tell the
quantities apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path
from matplotlib.transforms import ScaledTranslation, blended_transform_factory

from ._i18n import _
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


def plot_runs(
    *runs: Recording,
    title: str,
    save: Path | str | None = None,
    xlabel: str | None = None,
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
    The markers' labels stand in a band above the counts, where they hide no line (the figure grows
    by the band).
    """
    if not runs:
        raise ValueError("plot_runs needs at least one Recording")
    with rc_context({"font.family": _families()}):
        xlabel = _("time since start (ms; a millisecond stands for the article's second)") if xlabel is None else xlabel
        return _plot(runs, title, save, xlabel, markers, threshold, rss, verdict)


def _plot(
    runs: Sequence[Recording],
    title: str,
    save: Path | str | None,
    xlabel: str,
    markers: Sequence[tuple[float, str]],
    threshold: tuple[float, str] | None,
    rss: bool,
    verdict: Verdict | None,
) -> Plot:
    height, top, bottom = (5.8, 0.91, 0.09) if verdict is not None else (5.5, 0.95, 0.09)
    band = _label_band_inches(markers) if markers else 0.0
    extra = band + _TITLE_LINE_IN * title.count("\n")
    if extra:  # the axes keep their size; the band and the title's further lines go above them
        top, bottom = 1 - ((1 - top) * height + extra) / (height + extra), bottom * height / (height + extra)
    figure = Figure(figsize=(10.5, height + extra))
    # Fixed margins, room for five-digit ticks: a layout engine would cost a third of the drawing.
    # The legends sit right of the axes: inside, they would hide the lines and the markers' labels.
    figure.subplots_adjust(left=0.07, right=0.69, top=top, bottom=bottom, hspace=0.08)
    counts, memory = figure.subplots(2, 1, sharex=True)
    for index, run in enumerate(runs):
        look = {"color": _PALETTE[index % len(_PALETTE)], "linestyle": _RUN_STYLES[index % len(_RUN_STYLES)]}
        lines = (
            [(_("{label}: tasks", label=run.label), run.tasks, "")] if any(run.tasks) or not any(run.threads) else []
        )
        lines += [(_("{label}: threads", label=run.label), run.threads, "^")] if any(run.threads) else []
        lines += [
            (f"{run.label}: {name}", values, marker)
            for (name, values), marker in zip(run.series.items(), _SERIES_MARKERS, strict=False)
        ]
        every = _every(run.times_ms)
        for number, (label, values, marker) in enumerate(lines):
            # Counts that coincide (stuck threads and the sockets they hold) must all show: each line a
            # little wider than the ones drawn over it, its markers between theirs.
            counts.plot(
                run.times_ms,
                values,
                drawstyle="steps-post",
                marker=marker or None,
                markevery=(number * every // len(lines), every),
                linewidth=1.2 + 0.7 * (len(lines) - 1 - number),
                label=label,
                **look,
            )
        heap = [b / _MIB for b in run.heap_bytes]
        memory.plot(run.memory_times_ms, heap, label=_("{label}: heap (memray)", label=run.label), **look)
        if rss and run.rss_bytes:
            grown = [(b - run.rss_bytes[0]) / _MIB for b in run.rss_bytes]
            memory.plot(
                run.memory_times_ms,
                grown,
                marker="v",
                markevery=_every(run.memory_times_ms),
                label=_("{label}: RSS growth (process)", label=run.label),
                **look,
            )
    if threshold is not None:
        value, label = threshold
        counts.axhline(value, color="black", linestyle=(0, (6, 3)), linewidth=1.2, label=label)
    for axis in (counts, memory):
        for at_ms, _label in markers:
            axis.axvline(at_ms, color="black", linestyle=(0, (1, 2)), linewidth=1.2)
    on_top = blended_transform_factory(counts.transData, counts.transAxes)
    above = on_top + ScaledTranslation(0, _LABEL_GAP_PT / 72, figure.dpi_scale_trans)
    for at_ms, label in markers:
        counts.text(at_ms, 1.0, label, transform=above, rotation=90, va="bottom", ha="center", fontsize="small")
    counts.set_ylabel(_("live tasks / threads (count)"))
    counts.set_title(title, pad=band * 72 + 6 if band else None)  # 6 points: matplotlib's own title pad
    counts.legend(**_BESIDE)
    counts.grid(alpha=0.3)
    memory.set_ylabel(_("memory grown since start (MiB)") if rss else _("heap held (MiB)"))
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


_LABEL_GAP_PT = 3.0  # between the counts' top and a marker's label above it
_TITLE_LINE_IN = 0.22  # a further line of the title, at matplotlib's default size


def _label_band_inches(markers: Sequence[tuple[float, str]]) -> float:
    """The height of the band above the counts that holds the markers' labels, upright: the longest label."""
    font = FontProperties(size="small")
    longest = max(text_to_path.get_text_width_height_descent(label, font, ismath=False)[0] for _, label in markers)
    return (longest + 2 * _LABEL_GAP_PT) / 72


# Fonts with the Chinese glyphs DejaVu Sans lacks, for the translated lessons' titles and legends;
# matplotlib falls back along the family list glyph by glyph. The set-up installs the first
# (`make lab LEAKLAB_LANG=zh_CN`: Debian's fonts-noto-cjk).
_CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei")


@cache
def _families() -> list[str]:
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *[name for name in _CJK_FONTS if name in installed][:1]]


def _every(times: Sequence[float]) -> int:
    """Markers on about a dozen samples of a line, enough to tell it apart in grey."""
    return max(1, len(times) // 12)


def _slug(text: str) -> str:
    return re.sub(r"\W+", "_", text.lower()).strip("_") or "plot"  # a translated title keeps its words
