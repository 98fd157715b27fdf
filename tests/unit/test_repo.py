"""Finding the leaklab checkout from an instructor's course folder, which lies outside it."""

from __future__ import annotations

from pathlib import Path

from leaklab._repo import find_checkout

ROOT = Path(__file__).resolve().parents[2]


def test_inside_the_checkout_the_nearest_one_is_found():
    assert find_checkout(ROOT / "tests" / "unit") == ROOT


def test_outside_it_the_checkout_leaklab_was_installed_from_is_found(tmp_path):
    assert find_checkout(tmp_path) == ROOT
