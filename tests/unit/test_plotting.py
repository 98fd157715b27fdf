from __future__ import annotations

from leaklab import Recording, plot_runs


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
