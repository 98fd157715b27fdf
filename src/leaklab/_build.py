"""Generate the learner's and the worked copies of every lesson from its one authored source.

`exercises/` gets nbgrader's student version (answers replaced by stubs, hidden tests removed);
`solutions/` gets the source without hidden tests or solution markers, executed, with its plots.
Neither is edited by hand: `check` says where a committed copy no longer matches its source.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path

import nbformat

from ._errors import LeaklabError
from ._i18n import notebook_language, speaking
from ._repo import lessons, release_of
from ._translate import DOCS, doc_as_notebook, languages, notebook_as_doc, package_stale, stale, translated
from .grading import cells
from .grading.kernel import encrypted_kernels
from .grading.nbgrader_course import NbgraderCourse, temporary_course

_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.M)


def solution_skeleton(source: dict) -> dict:
    """The source without hidden tests, solution markers or outputs: what `solutions/` holds, unexecuted."""
    nb = copy.deepcopy(source)
    for cell in nb["cells"]:
        text = cells.text(cell)
        cell["source"] = _MARKER.sub("", cells.HIDDEN_TESTS.sub("", text)).rstrip("\n")
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def _normalised(nb: dict) -> str:
    return nbformat.writes(nbformat.from_dict(nb)) + "\n"


def _execute(nb: dict, folder: Path) -> dict:
    from nbclient import NotebookClient

    node = nbformat.from_dict(nb)
    resources = {"metadata": {"path": str(folder)}}
    with speaking(notebook_language(nb)):  # the package's messages in the lesson's language
        NotebookClient(
            node, timeout=120, kernel_name="python3", resources=resources, kernel_manager_class=encrypted_kernels()
        ).execute()
    return node


def _cells_of(nb: dict) -> list[tuple[str, str, str]]:
    return [
        (c["cell_type"], cells.text(c), json.dumps(c.get("metadata", {}).get("nbgrader"), sort_keys=True))
        for c in nb["cells"]
    ]


def build(
    course: Path,
    *,
    only: list[str] | None = None,
    check: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    in_languages: list[str | None] | None = None,
) -> list[str]:
    """Write (or, with `check`, compare) every lesson's exercise and solution (or `only` those named), in
    English (None) and in every language with catalogs in notebooks/locales/ (or `in_languages`); returns
    the drifts found."""
    known = lessons(course)
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise LeaklabError(f"no lesson named {', '.join(unknown)} in notebooks/; lessons: {', '.join(known)}")
    drifts = []
    for language in (None, *languages(course)) if in_languages is None else in_languages:
        with temporary_course(course) as temp:
            for slug, source_path in known.items():
                if only and slug not in only:
                    continue
                source = json.loads(source_path.read_text(encoding="utf-8"))
                if language is not None:
                    if check and (stale_cells := stale(course, language, slug, source)):
                        drifts += stale_cells
                        continue
                    source = _one_level_down(translated(course, language, slug, source), language)
                drifts += _build_one(course, temp, slug, source, language, check=check, progress=progress)
        if language is not None and not only:
            drifts += _build_docs(course, language, check=check, progress=progress)
            drifts += package_stale(course, language) if check else []  # the messages the lessons print
    return drifts


def _build_docs(course: Path, language: str, *, check: bool, progress: Callable[[str], None]) -> list[str]:
    """The pages of docs/ the lessons link to, in `language`: docs/<language>/<name>.md."""
    drifts = []
    for name in DOCS:
        english = doc_as_notebook((course / "docs" / f"{name}.md").read_text(encoding="utf-8"), name)
        if check and (stale_cells := stale(course, language, name, english)):
            drifts += stale_cells
            continue
        page = notebook_as_doc(translated(course, language, name, english))
        path = course / "docs" / language / f"{name}.md"
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != page:
                drifts.append(
                    f"docs/{language}/{name}.md: {'missing' if not path.exists() else 'differs from its source'}"
                )
            continue
        progress(f"{name} ({language}): writing {path.relative_to(course)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    return drifts


def _build_one(
    course: Path,
    temp: NbgraderCourse,
    slug: str,
    source: dict,
    language: str | None,
    *,
    check: bool,
    progress: Callable[[str], None],
) -> list[str]:
    where = Path(language) if language else Path()
    exercise_path = course / "exercises" / where / f"{slug}.ipynb"
    solution_path = course / "solutions" / where / f"{slug}.ipynb"
    source_path = temp.root / "authored" / where / f"{slug}.ipynb"
    source_path.parent.mkdir(parents=True, exist_ok=True)
    source_path.write_text(json.dumps(source), encoding="utf-8")
    released = nbformat.read(temp.generate(slug, source_path), as_version=4)
    if language:
        _same_checksums(released, nbformat.read(release_of(course, slug), as_version=4), f"{slug} in {language}")
    exercise = _normalised(released)
    skeleton = solution_skeleton(source)
    if check:
        return _exercise_drift(exercise_path, exercise) + _solution_drift(solution_path, skeleton)
    exercise_path.parent.mkdir(parents=True, exist_ok=True)
    solution_path.parent.mkdir(parents=True, exist_ok=True)
    progress(f"{slug}{f' ({language})' if language else ''}: writing {exercise_path.relative_to(course)}")
    exercise_path.write_text(exercise, encoding="utf-8")
    progress(f"{slug}{f' ({language})' if language else ''}: executing {solution_path.relative_to(course)}")
    solution_path.write_text(_normalised(_execute(skeleton, solution_path.parent)), encoding="utf-8")
    return []


def _one_level_down(nb: dict, language: str) -> dict:
    """A translation is written one folder deeper (exercises/zh_CN/): its links into the checkout follow,
    to the translated page where there is one (docs/zh_CN/glossary.md)."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            text = cells.text(cell).replace("](../", "](../../")
            for name in DOCS:
                text = text.replace(f"](../../docs/{name}.md", f"](../../docs/{language}/{name}.md")
            cell["source"] = text
    return nb


def _same_checksums(released: nbformat.NotebookNode, english: nbformat.NotebookNode, what: str) -> None:
    """One grader grades every language: each graded, answer and locked cell must be nbgrader's same."""

    def checksums(nb: nbformat.NotebookNode) -> dict[str, str]:
        return {cells.grade_id(c): cells.meta(c).get("checksum", "") for c in nb.cells if cells.grade_id(c)}

    ours, theirs = checksums(released), checksums(english)
    differ = sorted(g for g in ours.keys() | theirs.keys() if ours.get(g) != theirs.get(g))
    if differ:
        raise LeaklabError(f"{what}: released cells differ from the English release: {', '.join(differ)}")


def _exercise_drift(path: Path, expected: str) -> list[str]:
    name = f"{path.parent.name}/{path.name}"
    if not path.exists():
        return [f"{name}: missing"]
    return [] if path.read_text(encoding="utf-8") == expected else [f"{name}: differs from its source"]


def _solution_drift(path: Path, skeleton: dict) -> list[str]:
    name = f"{path.parent.name}/{path.name}"
    if not path.exists():
        return [f"{name}: missing"]
    committed = json.loads(path.read_text(encoding="utf-8"))
    if _cells_of(committed) != _cells_of(skeleton):
        return [f"{name}: its cells differ from its source"]
    code = [c for c in committed["cells"] if c["cell_type"] == "code"]
    if any(c.get("execution_count") is None for c in code):
        return [f"{name}: not executed"]
    if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])):
        return [f"{name}: a cell ended with an error"]
    return []
