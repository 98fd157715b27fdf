"""The work: every submission of an nbgrader course, as `nbgrader collect` laid it out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..._errors import LeaklabError


@dataclass
class Submission:
    """One student's notebook for one assignment."""

    student: str
    assignment: str
    path: Path

    def checksum(self) -> str:
        """The file's content hash: a re-submitted notebook is graded again."""
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]
        except OSError:
            return "unreadable"


def course_assignments(root: Path) -> list[str]:
    """The assignments of an nbgrader course: the folders of its `source/`."""
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir()) if (root / "source").is_dir() else []


def source_of(root: Path, assignment: str) -> Path:
    """The authored notebook of an assignment (hidden tests and all)."""
    return root / "source" / assignment / f"{assignment}.ipynb"


def release_of(root: Path, assignment: str) -> Path:
    """The student version of an assignment, as `nbgrader generate_assignment` released it."""
    return root / "release" / assignment / f"{assignment}.ipynb"


def find_submissions(root: Path, assignments: list[str] | None = None) -> list[Submission]:
    """Every `submitted/<student>/<assignment>/` folder of the course, for the assignments named (or all)."""
    known = course_assignments(root)
    if not known:
        raise LeaklabError(f"{root} is not an nbgrader course (no source/ folder): set one up with `leaklab course`")
    unknown = sorted(set(assignments or ()) - set(known))
    if unknown:
        raise LeaklabError(f"no assignment {', '.join(unknown)} in {root}; assignments: {', '.join(known)}")
    wanted = assignments or known
    found = []
    for student in sorted(p for p in (root / "submitted").glob("*") if p.is_dir()):
        for assignment in wanted:
            folder = student / assignment
            if folder.is_dir():
                found.append(Submission(student.name, assignment, folder / f"{assignment}.ipynb"))
    return found
