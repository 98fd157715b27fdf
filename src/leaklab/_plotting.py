"""One figure per comparison: task/thread counts above, memory below, runs overlaid on one time axis.

Drawn to read in grey as well as in colour: each run has its own colour from the Okabe-Ito palette
(safe for the common colour-blindnesses) and its own line style; within a run, markers tell the
quantities apart.

In a grading kernel (`handoff.PLOTS_ENV` set to "data") `plot_runs` draws nothing: it shows the figure's data
(`PlotData`), and the grader draws it (`draw`) into the autograded notebook and its feedback page, with
matplotlib already loaded. Importing matplotlib costs a kernel over half a second of CPU, a tenth of
what grading a notebook costs, and no grade ever reads a figure.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from ._i18n import _
from ._recording import Recording
from ._repo import artefacts_dir
from .grading.handoff import PLOT_MIME, PLOTS_ENV

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
) -> Plot | PlotData:
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
    drawn = _Drawn.of(title, xlabel, markers, threshold, rss, verdict)
    if os.environ.get(PLOTS_ENV) == "data":
        return PlotData(drawn.to_json(runs))
    from matplotlib import rc_context

    with rc_context({"font.family": _families()}):
        figure = _figure(runs, drawn)
    path = Path(save) if save is not None else artefacts_dir("plots") / (_slug(title) + ".png")
    figure.savefig(path, dpi=90)
    return Plot(figure, path)


def warm_up() -> None:
    """What the first figure a process draws costs (matplotlib, its fonts), paid now."""
    run = Recording("warm-up", Path(), times_ms=[0.0, 1.0], tasks=[0, 1], memory_times_ms=[0.0], heap_bytes=[0])
    draw(figure_data(run, title="warm-up", markers=[(1.0, "a marker")]))


def figure_data(*runs: Recording, title: str, **asked: object) -> dict:
    """What `plot_runs(*runs, title=title, **asked)` shows in a grading kernel: its figure's data."""
    return _Drawn.of(title, **asked).to_json(runs)  # type: ignore[arg-type]


@dataclass
class PlotData:
    """A figure's data, shown as `PLOT_MIME` (for the grader to draw) with a line of text beside it."""

    spec: dict

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict:
        return {PLOT_MIME: self.spec, "text/plain": f"[figure: {self.spec['title']}]"}


# A `Recording`'s sampled series, as a figure draws them.
_SERIES = ("times_ms", "tasks", "threads", "memory_times_ms", "heap_bytes", "rss_bytes")


@dataclass
class _Drawn:
    """What a figure shows besides its runs."""

    title: str
    xlabel: str
    markers: tuple[tuple[float, str], ...] = ()
    threshold: tuple[float, str] | None = None
    rss: bool = False
    headline: str | None = None  # a verdict's, heading the figure
    passed: bool = False
    # Its words, in the language of the kernel that made it (whoever draws it): `{label}` is a run's label.
    words: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        title: str,
        xlabel: str | None = None,
        markers: Sequence[tuple[float, str]] = (),
        threshold: tuple[float, str] | None = None,
        rss: bool = False,
        verdict: Verdict | None = None,
    ) -> _Drawn:
        """As `plot_runs` is asked, in the language spoken now."""
        xlabel = _("time since start (ms; a millisecond stands for the article's second)") if xlabel is None else xlabel
        headline, passed = (verdict.headline, verdict.passed) if verdict is not None else (None, False)
        return cls(title, xlabel, tuple(markers), threshold, rss, headline, passed, _words(rss))

    def to_json(self, runs: Sequence[Recording]) -> dict:
        return {
            **{k: getattr(self, k) for k in ("title", "xlabel", "rss", "headline", "passed", "words")},
            "markers": [[at, label] for at, label in self.markers],
            "threshold": list(self.threshold) if self.threshold is not None else None,
            "runs": [
                {"label": r.label, **{k: list(getattr(r, k)) for k in _SERIES}, "series": dict(r.series)} for r in runs
            ],
        }


# What the grader draws of a kernel's `PlotData` (written by the submission's process, so read with care).
MOST_POINTS = 400_000  # numbers in one figure: a figure of the lessons' own has a few thousand
_MOST_RUNS, _MOST_SERIES, _MOST_MARKERS, _LONGEST_TEXT = 8, 8, 100, 500


def draw(spec: object) -> bytes:
    """The PNG of a figure a grading kernel showed as data, as `plot_runs` draws it in the lab; ValueError
    for data that is not such a figure's (any shape, a number too many, a text too long). Its texts are
    drawn as plain text, never parsed as mathtext."""
    from matplotlib import rc_context

    runs, drawn = _read(spec)
    with rc_context({"font.family": _families(), "text.parse_math": False}):
        figure = _figure(runs, drawn)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=90)
    return png.getvalue()


def _read(spec: object) -> tuple[list[Recording], _Drawn]:
    if not isinstance(spec, dict) or not isinstance(spec.get("runs"), list):
        raise ValueError("not a figure's data")
    counted = [0]

    def text(value: object) -> str:
        if not isinstance(value, str) or len(value) > _LONGEST_TEXT:
            raise ValueError("a text that is not one, or is too long")
        return value

    def number(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("a number that is not one")
        return value

    def numbers(value: object) -> list[float]:
        if not isinstance(value, list):
            raise ValueError("a series that is not a list")
        counted[0] += len(value)
        if counted[0] > MOST_POINTS:
            raise ValueError(f"more than {MOST_POINTS} numbers")
        return [number(v) for v in value]

    runs = []
    for run in spec["runs"][: _MOST_RUNS + 1]:
        if not isinstance(run, dict) or not isinstance(run.get("series", {}), dict):
            raise ValueError("a run that is not one")
        series = {text(name): numbers(values) for name, values in list(run.get("series", {}).items())[:_MOST_SERIES]}
        lists = {k: numbers(run.get(k, [])) for k in _SERIES}
        runs.append(Recording(text(run.get("label")), Path(), series=series, **lists))
    markers = spec.get("markers") or []
    threshold = spec.get("threshold")
    if not 0 < len(runs) <= _MOST_RUNS or not isinstance(markers, list) or len(markers) > _MOST_MARKERS:
        raise ValueError("too many or too few runs or markers")
    if any(len(r.times_ms) != len(r.tasks) or len(r.memory_times_ms) != len(r.heap_bytes) for r in runs):
        raise ValueError("series of different lengths")
    if not all(isinstance(m, list) and len(m) == 2 for m in markers + ([threshold] if threshold else [])):
        raise ValueError("a marker that is not one")
    drawn = _Drawn(
        text(spec.get("title")),
        text(spec.get("xlabel")),
        tuple((number(at), text(label)) for at, label in markers),
        (number(threshold[0]), text(threshold[1])) if threshold else None,
        spec.get("rss") is True,
        text(spec["headline"]) if spec.get("headline") is not None else None,
        spec.get("passed") is True,
        {word: text(words.get(word)) for word in _words(False)} if isinstance(words := spec.get("words"), dict) else {},
    )
    if not drawn.words:
        raise ValueError("a figure without its words")
    return runs, drawn


def _words(rss: bool) -> dict[str, str]:
    """The figure's words, in the language spoken now."""
    return {
        "tasks": _("{label}: tasks", label="{label}"),
        "threads": _("{label}: threads", label="{label}"),
        "heap": _("{label}: heap (memray)", label="{label}"),
        "rss": _("{label}: RSS growth (process)", label="{label}"),
        "counts": _("live tasks / threads (count)"),
        "memory": _("memory grown since start (MiB)") if rss else _("heap held (MiB)"),
    }


def _figure(runs: Sequence[Recording], drawn: _Drawn) -> Figure:
    from matplotlib.figure import Figure
    from matplotlib.transforms import ScaledTranslation, blended_transform_factory

    title, xlabel, markers, threshold, rss = drawn.title, drawn.xlabel, drawn.markers, drawn.threshold, drawn.rss
    said = lambda word, run: drawn.words[word].replace("{label}", run.label)  # noqa: E731
    height, top, bottom = (5.8, 0.91, 0.09) if drawn.headline is not None else (5.5, 0.95, 0.09)
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
        lines = [(said("tasks", run), run.tasks, "")] if any(run.tasks) or not any(run.threads) else []
        lines += [(said("threads", run), run.threads, "^")] if any(run.threads) else []
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
        memory.plot(run.memory_times_ms, heap, label=said("heap", run), **look)
        if rss and run.rss_bytes:
            grown = [(b - run.rss_bytes[0]) / _MIB for b in run.rss_bytes]
            memory.plot(
                run.memory_times_ms,
                grown,
                marker="v",
                markevery=_every(run.memory_times_ms),
                label=said("rss", run),
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
    counts.set_ylabel(drawn.words["counts"])
    counts.set_title(title, pad=band * 72 + 6 if band else None)  # 6 points: matplotlib's own title pad
    counts.legend(**_BESIDE)
    counts.grid(alpha=0.3)
    memory.set_ylabel(drawn.words["memory"])
    memory.set_xlabel(xlabel)
    memory.legend(**_BESIDE)
    memory.grid(alpha=0.3)
    if drawn.headline is not None:
        colour = _PASSED if drawn.passed else _FAILED
        figure.text(0.5, 0.985, drawn.headline, ha="center", va="top", color=colour, weight="bold")
    return figure


_BESIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0, "fontsize": "small"}


_LABEL_GAP_PT = 3.0  # between the counts' top and a marker's label above it
_TITLE_LINE_IN = 0.22  # a further line of the title, at matplotlib's default size


def _label_band_inches(markers: Sequence[tuple[float, str]]) -> float:
    """The height of the band above the counts that holds the markers' labels, upright: the longest label."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

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
