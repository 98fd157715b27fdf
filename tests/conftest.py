"""Shared fixtures: project-local Jupyter/IPython/matplotlib dirs, and no test may leak a task or thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The same places the Makefile uses, for a plain `pytest` run: nothing is written to the home folder.
for name, folder in {
    "JUPYTER_CONFIG_DIR": "grader/jupyter",
    "JUPYTER_DATA_DIR": ".leaklab/jupyter/data",
    "JUPYTER_RUNTIME_DIR": ".leaklab/jupyter/runtime",
    "IPYTHONDIR": ".leaklab/ipython",
    "MPLCONFIGDIR": ".leaklab/matplotlib",
    "LEAKLAB_ARTEFACTS": ".leaklab/runs",
}.items():
    os.environ.setdefault(name, str(ROOT / folder))
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")


@pytest.fixture(autouse=True)
def no_leaked_tasks_or_threads():
    """Fail any test that leaves a task or a thread behind (pyinstrument's fixture, for our objects)."""
    from leaklab import no_leaks

    with no_leaks(timeout=5.0):
        yield


@pytest.fixture
def root() -> Path:
    """The checkout's top folder."""
    return ROOT


# `make test` runs the suite on two workers (pytest-xdist: the grading tests mostly wait, so two keep a
# 2-core machine busy). Each test module runs whole on one worker, so that its module and session fixtures
# run once; the cluster test shares the class test's run of the corpus, so it goes with it.
SAME_WORKER = {"tests/notebooks/test_cluster_grading.py": "tests/notebooks/test_class_grading.py"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SAME_WORKER.get(module, module)

    return ByModule(config, log)
