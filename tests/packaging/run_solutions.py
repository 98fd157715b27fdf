"""Run by the fresh venv's python (tests/packaging/test_install.py): execute notebooks, report as JSON.

Each notebook runs in the `python3` kernel as `leaklab build` runs the solutions, then one more cell says which
interpreter and which leaklab that kernel runs. Prints `{path: {"errors": [...], "kernel": [python, leaklab]}}`.
"""

from __future__ import annotations

import json
import sys
import tempfile

import nbformat
from nbclient import NotebookClient

WHERE = "import sys, leaklab\nprint(sys.executable)\nprint(leaklab.__file__)"


def run(path: str) -> dict:
    """The errors of `path`'s cells (but those tagged to raise), and what the kernel ran on."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(WHERE))
    with tempfile.TemporaryDirectory(prefix="leaklab-run-") as folder:
        client = NotebookClient(
            nb, timeout=120, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": folder}}
        )
        client.execute()
    errors = [
        f"cell {index}: {output.ename}: {output.evalue}"
        for index, cell in enumerate(nb.cells[:-1])
        if "raises-exception" not in cell.metadata.get("tags", [])
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    where = nb.cells[-1].outputs
    printed = "".join(output.get("text", "") for output in where if output.output_type == "stream")
    return {"errors": errors, "kernel": printed.splitlines(), "last_cell": [dict(output) for output in where]}


if __name__ == "__main__":
    print(json.dumps({path: run(path) for path in sys.argv[1:]}))
