"""The grading core's layout, held against the code: each module imports only what docs/grading.md's
module map allows it, and the light parts load nothing heavy (nbgrader's config and every grading
kernel import them)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import leaklab.grading

GRADING = Path(leaklab.grading.__file__).parent

# docs/grading.md's "may import" column, as names of leaklab modules ("grading.x", "scenarios", "_repo").
ALLOWED = {
    "settings": set(),
    "cells": set(),
    "results": set(),
    "handoff": {"cells"},
    "sandbox": {"settings"},
    "watch": {"_census"},
    "isolation": {"settings", "results", "handoff", "sandbox", "watch", "scenarios", "_errors", "_stacks", "_i18n"},
    "child": {"isolation", "settings", "results", "scenarios", "_census", "_stacks", "_errors", "_i18n", "_repo"},
    "own_run": {"cells", "isolation", "results"},
    "checks": {"cells", "results", "_errors"},
    "kernel": {"cells", "handoff", "sandbox", "settings", "results", "_repo", "_plotting"},
    "nbgrader_course": {"kernel", "handoff", "sandbox", "results", "_repo", "_errors", "_i18n"},
    "core": {"handoff", "isolation", "checks", "kernel", "own_run", "results", "_i18n"},
    "single": {"core", "checks", "kernel", "nbgrader_course", "results", "sandbox", "_repo", "_errors"},
}
CLASSROOM = {"core", "checks", "cells", "isolation", "kernel", "nbgrader_course", "results", "settings", "sandbox"}


def leaklab_imports(path: Path) -> set[str]:
    """The leaklab modules a file imports, by their last name (`grading.cells` -> "cells")."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            if node.module:
                found.add(node.module.split(".")[-1] if node.level < 3 else node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_each_part_imports_only_what_the_module_map_allows(name):
    assert leaklab_imports(GRADING / f"{name}.py") <= ALLOWED[name]


def test_the_class_grader_stands_on_the_core_and_below():
    sibling = {"cluster", "discovery", "job", "processes", "records", "scheduler"}
    for path in (GRADING / "classroom").glob("*.py"):
        allowed = CLASSROOM | sibling | {"_errors"} | ({"_repo"} if path.stem == "cluster" else set())
        assert leaklab_imports(path) <= allowed, path.name


def test_every_module_of_the_core_is_in_the_map():
    assert {p.stem for p in GRADING.glob("*.py")} - {"__init__"} == set(ALLOWED)


def test_the_light_parts_load_no_memray_matplotlib_or_nbgrader():
    code = (
        "import sys, leaklab.grading, leaklab.grading.settings, leaklab.grading.isolation, leaklab.grading.handoff\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'memray', 'matplotlib', 'nbgrader', 'nbformat'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
