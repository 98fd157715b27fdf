"""Every worked solution runs top to bottom, without an error in any cell, in the sandboxed kernel the
graders use: its plots, dumps and memray captures need nothing the sandbox hides (feedback pages show them)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from leaklab.grading import sandbox, settings
from leaklab.grading.kernel import restored, sandboxed_kernels

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(sandbox.unavailable()), reason=f"no sandbox here: {sandbox.unavailable()}"),
]


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*.ipynb")), ids=lambda path: path.stem)
def test_the_solution_runs_cleanly_in_the_sandbox(path, tmp_path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    client = NotebookClient(
        nbformat.from_dict(restored(nb, nb)),
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
        kernel_manager_class=sandboxed_kernels(tmp_path / "kernel"),
        **settings.KERNEL_RUN,
    )
    executed = client.execute()
    errors = [
        (index, output.get("ename"), output.get("evalue"))
        for index, cell in enumerate(executed.cells)
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    images = [o for cell in executed.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "no plot was drawn"
