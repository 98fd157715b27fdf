"""The one error type a user can cause (it carries the message to print and the exit code), and how an
exception an answer raised reads in a failure message."""

from __future__ import annotations

from ._i18n import _


class LeaklabError(Exception):
    """A problem the user can fix; the CLI prints the message (no traceback) and exits with `exit_code`."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def described(exc: BaseException) -> str:
    """An exception a check met, as its problem; for a name the answer cell lacks, where to get it (the
    notebook's first cell defines names the graded run does not have)."""
    said = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, NameError) and exc.name:
        hint = _("the graded run has only the answer cell: import or define `{name}` in it", name=exc.name)
        return f"{said} ({hint})"
    return said
