"""What the lessons' unit tests ask of every graded outcome besides its properties: a check failed for
what the answer did, never because the check itself broke. A check that raises fails its property with
the exception's name (`_checks.Checks.run`), so a grader bug (a `TypeError` in a check) would otherwise
look like a wrong answer caught; the lessons' known answers provoke none of these, so one is a bug."""

from __future__ import annotations

import re

from leaklab.grading.isolation import IsolatedRun

# A property's problem that is a bare exception of the kinds a slip in Python code raises.
_SLIP = re.compile(r"^[\w ]+: (TypeError|AttributeError|NameError|UnboundLocalError|KeyError|IndexError)\b")


def checks_ran(result: IsolatedRun) -> None:
    """Fail if a check of `result` broke instead of judging."""
    slips = [problem for problem in result.outcome.get("problems", []) if _SLIP.match(problem)]
    assert not slips, f"a check raised instead of judging: {slips}"
