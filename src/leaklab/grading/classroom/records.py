"""What the class grader writes into the course, one submission at a time as each ends: the gradebook
(what formgrader and `nbgrader export` read), `autograded/` and `feedback/`, and a ledger from which
grades.csv is written. An interrupted run loses nothing already written."""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..results import Reason, TestResult
from .discovery import Submission

LEDGER = Path("leaklab") / "grades.jsonl"  # under the course root: one line per graded submission
TABLE = Path("leaklab") / "grades.csv"


@dataclass
class Outcome:
    """A graded submission: its score, each test's, and why it was not graded normally, if it was not."""

    student: str
    assignment: str
    checksum: str
    score: float = 0.0
    max_score: float = 0.0
    tests: dict[str, TestResult] = field(default_factory=dict)
    reason: Reason | None = None
    detail: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            **{k: getattr(self, k) for k in ("student", "assignment", "checksum", "score", "max_score")},
            "tests": {name: test.to_json() for name, test in self.tests.items()},
            "reason": self.reason.value if self.reason else "",
            **{k: getattr(self, k) for k in ("detail", "seconds")},
        }

    @classmethod
    def from_json(cls, data: dict) -> Outcome:
        """From `to_json`'s form, or an older ledger line's."""
        tests = {name: TestResult.from_json(test) for name, test in data.get("tests", {}).items()}
        reason = Reason(data["reason"]) if data.get("reason") else None
        return cls(**{**data, "tests": tests, "reason": reason})


def read_ledger(root: Path) -> dict[tuple[str, str], Outcome]:
    """The latest outcome per (student, assignment); a line cut short by a crash is skipped."""
    outcomes = {}
    with contextlib.suppress(FileNotFoundError):
        for line in (root / LEDGER).read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                outcome = Outcome.from_json(json.loads(line))
                outcomes[outcome.student, outcome.assignment] = outcome
    return outcomes


def write_table(root: Path, outcomes: dict[tuple[str, str], Outcome]) -> Path:
    """The CSV: one row per student and notebook, with a reason for anything not graded normally."""
    path = root / TABLE
    unfinished = path.with_suffix(".part")
    with unfinished.open("w", newline="", encoding="utf-8") as table:
        writer = csv.writer(table)
        writer.writerow(["student", "assignment", "notebook", "score", "max_score", "reason", "detail"])
        for (student, assignment), o in sorted(outcomes.items()):
            reason = o.reason.value if o.reason else ""
            writer.writerow(
                [student, assignment, f"{assignment}.ipynb", f"{o.score:g}", f"{o.max_score:g}", reason, o.detail]
            )
    unfinished.replace(path)
    return path


def record(root: Path, sub: Submission, outcome: Outcome, produced: dict[str, Path]) -> None:
    """Write one outcome: gradebook, autograded notebook and feedback page (`produced`, where the job
    made them), then the ledger line last."""
    _record_in_gradebook(root, sub, outcome)
    for folder, suffix in (("autograded", ".ipynb"), ("feedback", ".html")):
        target = root / folder / sub.student / sub.assignment / f"{sub.assignment}{suffix}"
        made = produced.get(folder)
        if made is not None and made.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made, target.with_suffix(".part"))
            target.with_suffix(".part").replace(target)
        else:  # none this time: an earlier version's page must not pass for this one's
            target.unlink(missing_ok=True)
    ledger = root / LEDGER
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a", encoding="utf-8") as lines:
        lines.write(json.dumps(outcome.to_json()) + "\n")
        lines.flush()
        os.fsync(lines.fileno())


def _record_in_gradebook(root: Path, sub: Submission, outcome: Outcome) -> None:
    import warnings

    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader 0.9's own session use, on SQLAlchemy 2
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        # Every student who handed something in is on the roster, so `nbgrader export` lists a zero for
        # a notebook that could not be graded at all (its reason is in grades.csv).
        gradebook.update_or_create_student(sub.student)
        if outcome.tests:
            # With the time `nbgrader collect` wrote, as nbgrader's autograde records it: the formgrader
            # counts a submission as autograded only when the two agree, and judges lateness by it.
            gradebook.update_or_create_submission(sub.assignment, sub.student, timestamp=submitted_at(sub))
            for grade_id, test in outcome.tests.items():
                grade = gradebook.find_grade(grade_id, sub.assignment, sub.assignment, sub.student)
                grade.auto_score, grade.needs_manual_grade = test.score, False
            if outcome.reason:
                for cell in gradebook.find_notebook(sub.assignment, sub.assignment).solution_cells:
                    with contextlib.suppress(MissingEntry):
                        comment = gradebook.find_comment(cell.name, sub.assignment, sub.assignment, sub.student)
                        comment.auto_comment = f"leaklab: {outcome.reason.value}: {outcome.detail}"
        else:  # not gradable (now): no score of an earlier version of the notebook may stay behind
            with contextlib.suppress(MissingEntry):
                gradebook.remove_submission(sub.assignment, sub.student)
        gradebook.db.commit()


def submitted_at(sub: Submission) -> datetime.datetime | None:
    """The submission's `timestamp.txt` (written by `nbgrader submit` and kept by `collect`), if readable."""
    from nbgrader.utils import parse_utc

    with contextlib.suppress(OSError, ValueError):
        return parse_utc((sub.path.parent / "timestamp.txt").read_text(encoding="utf-8").strip())
    return None
