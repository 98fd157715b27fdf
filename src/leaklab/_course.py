"""An nbgrader course directory made from the lessons, for an instructor's own class.

nbgrader's commands (`generate_assignment`, `release_assignment`, `collect`, `autograde`,
`generate_feedback`, `export`) and JupyterLab's formgrader all work on the folder this writes, as
nbgrader's documentation describes: each lesson is an assignment named by its slug, whose one notebook
has the same name, graded with the repo's `grader/nbgrader_config.py`.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._errors import LeaklabError
from ._repo import lessons

CONFIG = "nbgrader_config.py"
_MARK = "# written by `leaklab course`"


def _config_text(repo: Path, root: Path, exchange: Path) -> str:
    return f"""{_MARK}: the leaklab course, graded as the repo grades it.
# Edit freely; `leaklab course` leaves an existing file alone.
c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

load_subconfig({str(repo / "grader" / CONFIG)!r})  # noqa: F821 - timeouts, kernel, feedback

c.CourseDirectory.course_id = "leaklab"
c.CourseDirectory.root = {str(root)!r}
# Where release_assignment puts assignments and students' submit puts their work: a folder every
# student and the instructor can reach (a shared volume on a JupyterHub).
c.Exchange.root = {str(exchange)!r}
"""


def _read_roster(path: Path) -> list[dict[str, str]]:
    """Students from a CSV with an `id` column (and optional first_name, last_name, email)."""
    try:
        with path.open(newline="", encoding="utf-8") as roster:
            rows = list(csv.DictReader(roster))
    except OSError as exc:
        raise LeaklabError(f"cannot read the roster {path}: {exc.strerror}") from None
    if not rows or "id" not in rows[0]:
        raise LeaklabError(f"the roster {path} needs a header line with an `id` column (and a row per student)")
    return rows


def init_course(
    repo: Path,
    root: Path,
    *,
    exchange: Path | None = None,
    roster: Path | None = None,
    language: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Create (or refresh) an nbgrader course at `root`: sources, released versions, gradebook, students.

    Refreshing copies the current lessons into `source/` and regenerates the released versions;
    submissions, grades and an edited config are never touched. Returns the assignments. `language`
    releases the lessons in that translation (`zh_CN`): the same code, grade ids and checksums, so a
    class may hand in either language and is graded alike.
    """
    from .grading.nbgrader_course import NbgraderCourse

    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise LeaklabError(f"{root} exists and is not a folder")
    if (root / "notebooks").is_dir() and (root / "grader").is_dir():
        raise LeaklabError(f"{root} is the leaklab checkout itself: give the course a folder of its own")
    if not lessons(repo):
        raise LeaklabError(f"no lessons in {repo / 'notebooks'}: is --course the leaklab checkout?")
    if language is not None and language not in translations(repo):
        have = ", ".join(translations(repo)) or "none"
        raise LeaklabError(f"--lang {language}: the lessons have no such translation (they have: {have})")
    students = _read_roster(roster) if roster is not None else []
    root.mkdir(parents=True, exist_ok=True)
    exchange = (exchange or root / "exchange").resolve()
    config = root / CONFIG
    if not config.exists():
        config.write_text(_config_text(repo, root, exchange), encoding="utf-8")
        progress(f"wrote {config}")
    exchange.mkdir(parents=True, exist_ok=True)
    mode = exchange.stat().st_mode
    if exchange.stat().st_uid == os.geteuid():  # nbgrader's exchange must let every student write into it
        exchange.chmod(stat.S_IMODE(mode) | 0o777)  # a sticky bit stays
    elif mode & 0o777 != 0o777:
        progress(f"warning: {exchange} is not writable by everyone: students cannot submit into it")
    course = NbgraderCourse(repo, root)
    slugs = list(lessons(repo))
    with tempfile.TemporaryDirectory(prefix="leaklab-course-") as scratch:
        for slug, source in lessons(repo).items():
            progress(f"{slug}: source and release" + (f" in {language}" if language else ""))
            course.generate(slug, source if language is None else _translated(repo, language, slug, Path(scratch)))
    if students:
        from nbgrader.api import Gradebook

        with Gradebook(course.db_url) as gradebook:
            for row in students:
                extra = {k: v for k, v in row.items() if k in ("first_name", "last_name", "email") and v}
                gradebook.update_or_create_student(row["id"], **extra)
        progress(f"{len(students)} students in the gradebook")
    return slugs


def translations(repo: Path) -> list[str]:
    """The languages the lessons are translated into, English aside."""
    from ._translate import languages

    return languages(repo)


def _translated(repo: Path, language: str, slug: str, scratch: Path) -> Path:
    """The authored lesson in `language`, written to `scratch` for nbgrader to copy in; LeaklabError
    naming the cells if its translation is stale."""
    from ._translate import translated

    source = json.loads(lessons(repo)[slug].read_text(encoding="utf-8"))
    path = scratch / f"{slug}.ipynb"
    path.write_text(
        json.dumps(translated(repo, language, slug, source), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return path
