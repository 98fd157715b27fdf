from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from leaklab import Recording, plot_runs
from leaklab._plotting import draw, figure_data
from leaklab.grading.handoff import PLOT_MIME, PLOTS_ENV
from leaklab.grading.isolation import Verdict


def fake_run(label: str, tasks: list[int], threads: list[int]) -> Recording:
    run = Recording(label, capture=None)  # type: ignore[arg-type]
    run.times_ms = [float(i) for i in range(len(tasks))]
    run.tasks, run.threads = tasks, threads
    run.memory_times_ms = run.times_ms
    run.heap_bytes = [n * 65536 for n in tasks]
    run.rss_bytes = [10**8] * len(tasks)
    return run


def test_one_figure_two_panels_sharing_time_with_units(tmp_path):
    leaky = fake_run("leaky", [0, 1, 2, 3], [0, 0, 0, 0])
    fixed = fake_run("fixed", [0, 1, 1, 0], [0, 1, 0, 0])
    plot = plot_runs(leaky, fixed, title="demo", save=tmp_path / "demo.png")
    counts, memory = plot.figure.axes
    assert counts.get_shared_x_axes().joined(counts, memory)
    assert "count" in counts.get_ylabel() and "MiB" in memory.get_ylabel() and "ms" in memory.get_xlabel()
    labels = [t.get_text() for t in counts.get_legend().get_texts()]
    assert labels == ["leaky: tasks", "fixed: tasks", "fixed: threads"]
    assert [t.get_text() for t in memory.get_legend().get_texts()] == ["leaky: heap (memray)", "fixed: heap (memray)"]
    assert plot.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot._repr_png_() == plot.path.read_bytes()


def test_saved_to_the_artefacts_folder_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAKLAB_ARTEFACTS", str(tmp_path))
    plot = plot_runs(fake_run("only", [0, 1], [0, 0]), title="Some Title!")
    assert plot.path == tmp_path / "plots" / "some_title.png"


def test_markers_threshold_rss_and_further_counts_are_drawn_and_labelled(tmp_path):
    run = fake_run("leaky", [0, 1, 2, 3], [0, 0, 0, 0])
    run.series = {"open sockets": [0, 2, 4, 6]}
    run.rss_bytes = [10**8, 10**8 + 2**20, 10**8 + 2**21, 10**8 + 2**21]
    plot = plot_runs(
        run,
        title="demo",
        save=tmp_path / "d.png",
        markers=[(1.0, "alert"), (2.0, "day 2")],
        threshold=(2, "limit"),
        rss=True,
    )
    counts, memory = plot.figure.axes
    assert [t.get_text() for t in counts.get_legend().get_texts()] == ["leaky: tasks", "leaky: open sockets", "limit"]
    assert {t.get_text() for t in counts.texts} == {"alert", "day 2"}
    grown = memory.get_lines()[1]
    assert grown.get_label() == "leaky: RSS growth (process)" and list(grown.get_ydata()) == [0, 1, 2, 2]
    assert "since start" in memory.get_ylabel()


def test_runs_differ_in_line_style_as_well_as_colour(tmp_path):
    runs = [fake_run(name, [0, 1], [0, 0]) for name in ("a", "b", "c")]
    lines = plot_runs(*runs, title="demo", save=tmp_path / "d.png").figure.axes[0].get_lines()
    assert len({line.get_linestyle() for line in lines}) == 3
    assert len({line.get_color() for line in lines}) == 3


def test_a_verdict_heads_the_figure_in_its_own_words(tmp_path):
    failed = Verdict([("nothing left behind", "left behind after the burst")])
    plot = plot_runs(
        fake_run("yours", [0, 1], [0, 0]), title="the leak and your answer", save=tmp_path / "d.png", verdict=failed
    )
    assert [t.get_text() for t in plot.figure.texts] == ["✗ not yet: 1 of 1 visible checks fail"]
    passed = plot_runs(
        fake_run("yours", [0, 0], [0, 0]), title="t", save=tmp_path / "e.png", verdict=Verdict([("x", None)])
    )
    assert passed.figure.texts[0].get_text().startswith("✓")


def test_counts_that_coincide_all_show_and_marker_labels_hide_no_line(tmp_path):
    # GIVEN a run whose threads and open sockets are the same count all along, with a marker mid-run,
    # WHEN it is plotted,
    # THEN the line drawn first is the wider, their markers fall on different samples, and the marker's
    # label stands above the counts' axes, where no line runs.
    run = fake_run("twist", [0] * 24, list(range(24)))
    run.series = {"open sockets": list(range(24))}
    plot = plot_runs(run, title="demo", save=tmp_path / "d.png", markers=[(12.0, "a long label for a marker")])
    counts = plot.figure.axes[0]
    threads, sockets = counts.get_lines()[:2]
    assert threads.get_linewidth() > sockets.get_linewidth()
    assert threads.get_markevery()[0] != sockets.get_markevery()[0]
    renderer = FigureCanvasAgg(plot.figure).get_renderer()
    (label,) = counts.texts
    assert label.get_window_extent(renderer).y0 >= counts.get_window_extent(renderer).y1
    assert label.get_window_extent(renderer).y1 <= plot.figure.bbox.y1


def test_a_translated_figure_draws_its_chinese_words_and_names_its_file_by_them(tmp_path, monkeypatch):
    from leaklab import _plotting

    if len(_plotting._families()) < 2:
        pytest.skip("no CJK font installed (`make lab LEAKLAB_LANG=zh_CN` installs Debian's fonts-noto-cjk)")
    monkeypatch.setenv("LEAKLAB_ARTEFACTS", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for a tofu box
        one = plot_runs(fake_run("泄漏的处理函数", [0, 1, 2], [0, 0, 0]), title="01 被遗忘的取消 泄漏")
        other = plot_runs(fake_run("你的处理函数", [0, 1, 0], [0, 0, 0]), title="01 被遗忘的取消 你的答案")
    assert one.path.name == "01_被遗忘的取消_泄漏.png" and other.path != one.path


# --- in a grading kernel: the figure's data, drawn by the grader ----------------------------------------


def test_in_a_grading_kernel_a_figure_is_shown_as_data_without_loading_matplotlib():
    # GIVEN a kernel told it is graded (LEAKLAB_PLOTS=data, as grading.core tells nbgrader's kernels),
    # WHEN a lesson plots its runs, THEN it shows the figure's data, and matplotlib is never imported:
    # that import is over half a second of the kernel's CPU, for a figure no grade reads.
    script = """
import json, sys
from leaklab import Recording, plot_runs
run = Recording("leaky", capture=None, times_ms=[0.0, 5.0], tasks=[0, 3], memory_times_ms=[0.0], heap_bytes=[0])
shown = plot_runs(run, title="the leak", markers=[(5.0, "alert")])
bundle = shown._repr_mimebundle_()
print(json.dumps({"loaded": "matplotlib" in sys.modules, "mimes": sorted(bundle), "text": bundle["text/plain"]}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, PLOTS_ENV: "data"}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "loaded": False,
        "mimes": [PLOT_MIME, "text/plain"],
        "text": "[figure: the leak]",
    }


def figure_both_ways(tmp_path, monkeypatch, **asked) -> tuple[bytes, bytes]:
    """The PNG the lab saves, and the PNG the grader draws from the data a grading kernel shows."""
    run = fake_run("leaky", [0, 1, 2, 3], [0, 1, 1, 0])
    run.series = {"open sockets": [0, 2, 4, 6]}
    lab = plot_runs(run, fake_run("fixed", [0, 1, 0, 0], [0, 0, 0, 0]), save=tmp_path / "lab.png", **asked)
    monkeypatch.setenv(PLOTS_ENV, "data")
    shown = plot_runs(run, fake_run("fixed", [0, 1, 0, 0], [0, 0, 0, 0]), **asked)._repr_mimebundle_()
    return lab.path.read_bytes(), draw(json.loads(json.dumps(shown[PLOT_MIME])))  # as the notebook keeps it


def test_the_grader_draws_the_figure_the_lab_draws(tmp_path, monkeypatch):
    verdict = Verdict([("nothing left behind", "left behind after the burst")])
    asked = {"markers": [(1.0, "alert")], "threshold": (2, "limit"), "rss": True, "verdict": verdict}
    lab, drawn = figure_both_ways(tmp_path, monkeypatch, title="01 the leak\nand your answer", **asked)
    assert drawn == lab


def test_the_grader_draws_a_figures_texts_as_plain_text(tmp_path, monkeypatch):
    lab, drawn = figure_both_ways(tmp_path, monkeypatch, title="$x$ is math")
    assert drawn != lab and drawn[:8] == b"\x89PNG\r\n\x1a\n"  # the lab's title is mathtext; the data's is never


def test_the_grader_draws_a_figure_in_the_words_of_the_kernel_that_showed_it(monkeypatch):
    from leaklab._i18n import speaking

    monkeypatch.setenv(PLOTS_ENV, "data")
    with speaking("zh_CN"):
        spec = plot_runs(fake_run("泄漏", [0, 1], [0, 0]), title="t")._repr_mimebundle_()[PLOT_MIME]
    assert spec["words"]["tasks"] != "{label}: tasks" and "{label}" in spec["words"]["tasks"]
    assert draw(spec)[:8] == b"\x89PNG\r\n\x1a\n"


def good_spec() -> dict:
    return figure_data(fake_run("leaky", [0, 1, 2], [0, 0, 0]), title="t", markers=[(1.0, "alert")])


def changed(**fields) -> dict:
    return {**good_spec(), **fields}


def run_changed(**fields) -> dict:
    spec = good_spec()
    return {**spec, "runs": [{**spec["runs"][0], **fields}]}


@pytest.mark.parametrize(
    "spec",
    [
        None,
        [],
        {},
        changed(runs=[]),
        changed(runs=[good_spec()["runs"][0]] * 9),
        changed(runs="leaky"),
        changed(title=3),
        changed(title="t" * 501),
        changed(words={}),
        changed(words={**good_spec()["words"], "tasks": None}),
        changed(markers=[[1.0]]),
        changed(markers=[[1.0, "m"]] * 101),
        changed(threshold=["x", "limit"]),
        run_changed(tasks=[0, 1, float("nan")]),
        run_changed(tasks=[0, True, 1]),
        run_changed(tasks=[0, 1]),
        run_changed(series=[1, 2]),
        run_changed(times_ms=list(range(300_000)), tasks=list(range(300_000))),
    ],
    ids=lambda spec: str(spec)[:40],
)
def test_data_that_is_not_a_figures_is_refused(spec):
    with pytest.raises(ValueError):
        draw(spec)
