"""Fixtures for the browser test: the lab started the way `make lab` starts it, and headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from e2e_support import SCREENSHOTS, Lab, find_chromium, start_lab, stop_lab


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium binary, or a skip that says why the browser test cannot run."""
    pytest.importorskip("playwright.sync_api", reason="e2e skipped: playwright is not installed (make installs it)")
    path = find_chromium()
    if path is None and os.environ.get("LEAKLAB_CHROMIUM"):
        pytest.skip(f"e2e skipped: LEAKLAB_CHROMIUM={os.environ['LEAKLAB_CHROMIUM']} is not an executable file")
    if path is None:
        pytest.skip("e2e skipped: no Chromium found (`make e2e` installs it with apt-get when run as root)")
    return path


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The folder a person looks at after the run; emptied first so that it shows this run only."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS


@contextmanager
def running_lab(home: Path, language: str | None = None) -> Iterator[Lab]:
    """A running lab; afterwards nothing it started is left running."""
    running = start_lab(home, language)
    try:
        yield running
    finally:
        killed = stop_lab(running)
        assert not killed, f"processes left running after the lab stopped (killed now): {killed}"


@pytest.fixture(scope="session")
def lab(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab as `make lab` starts it, on a temp copy of the exercises."""
    with running_lab(tmp_path_factory.mktemp("lab")) as running:
        yield running


@pytest.fixture(scope="session")
def chinese_lab(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab as `make lab LEAKLAB_LANG=zh_CN` starts it, on a temp copy of the Chinese exercises."""
    with running_lab(tmp_path_factory.mktemp("lab-zh_CN"), "zh_CN") as running:
        yield running
