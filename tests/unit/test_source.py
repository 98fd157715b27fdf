from __future__ import annotations

import inspect

import pytest

from leaklab import show_source
from leaklab.scenarios import forgotten_cancel


def test_lines_are_numbered_as_the_file_numbers_them():
    shown = str(show_source(forgotten_cancel.leaky_handle_request)).splitlines()
    _, first = inspect.getsourcelines(forgotten_cancel.leaky_handle_request)
    assert shown[0].lstrip().startswith(f"{first}  async def leaky_handle_request")
    file_lines = inspect.getsource(forgotten_cancel).splitlines()
    for line in shown:
        number, _, text = line.lstrip().partition("  ")
        assert file_lines[int(number) - 1] == text


def test_a_range_of_lines_and_a_range_outside_the_object():
    _, first = inspect.getsourcelines(forgotten_cancel.leaky_handle_request)
    part = show_source(forgotten_cancel.leaky_handle_request, lines=(first + 1, first + 2))
    assert [line.split()[0] for line in str(part).splitlines()] == [str(first + 1), str(first + 2)]
    with pytest.raises(ValueError, match="outside"):
        show_source(forgotten_cancel.leaky_handle_request, lines=(1, 2))


def test_an_object_without_source_says_so():
    with pytest.raises(TypeError, match="no source"):
        show_source(len)
