"""The one error type a user can cause: it carries the message to print and the exit code."""

from __future__ import annotations


class LeaklabError(Exception):
    """A problem the user can fix; the CLI prints the message (no traceback) and exits with `exit_code`."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
