"""The hub test imports its machinery from this folder (tests/hub/hub_support.py), like the browser test."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the `hub` marker (the suite runs with --strict-markers)."""
    config.addinivalue_line("markers", "hub: runs a real JupyterHub with real Unix users (tests/hub, `make hub`)")
