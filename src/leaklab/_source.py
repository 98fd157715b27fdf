"""Source listings with the file's own line numbers, so that a listing and a task dump cite the same lines."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from ._i18n import _


@dataclass
class Source:
    """Numbered lines of one object's source, shown as text in a notebook."""

    name: str
    first: int
    lines: list[str]

    def __str__(self) -> str:
        width = len(str(self.first + len(self.lines) - 1))
        return "\n".join(f"{self.first + i:>{width}}  {line}" for i, line in enumerate(self.lines))

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(str(self))  # type: ignore[attr-defined]


def show_source(obj: object, *, lines: tuple[int, int] | None = None) -> Source:
    """`obj`'s source numbered as its file numbers it (the numbers a task dump cites); `lines=(first,
    last)` keeps only those lines of the file."""
    try:
        body, first = inspect.getsourcelines(obj)  # type: ignore[arg-type]
    except (OSError, TypeError) as error:
        raise TypeError(_("no source to show for {obj!r}: {error}", obj=obj, error=error)) from None
    first = max(first, 1)  # a module's source starts at line 0
    body = [line.rstrip("\n") for line in body]
    if lines is not None:
        start, end = lines
        if not first <= start <= end < first + len(body):
            raise ValueError(
                _(
                    "lines {start}-{end} are outside {first}-{last}",
                    start=start,
                    end=end,
                    first=first,
                    last=first + len(body) - 1,
                )
            )
        body, first = body[start - first : end - first + 1], start
    return Source(getattr(obj, "__qualname__", repr(obj)), first, body)
