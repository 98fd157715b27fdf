"""The lessons in other languages: one gettext catalog per lesson and language, one message per cell.

A message's id is the cell's English text and its context the cell's id, so an edit to an English cell
leaves the old translation in its place marked fuzzy, with the English it was made from beside it
(`#| msgid`), instead of silently keeping a stale one or dropping it. Catalogs are the ecosystem's
`.po` files (read and written by Babel), in `notebooks/locales/<lang>/LC_MESSAGES/<lesson>.po` as Sphinx
keeps them; any PO editor opens them.

What is translated, and what must stay byte for byte the same so that one grader grades every language
(nbgrader checksums the source of its graded, answer and locked cells):
- markdown cells, whole;
- code cells nbgrader does not checksum: their comments and strings only, the code itself checked equal;
- answer cells: comments inside `### BEGIN SOLUTION` .. `### END SOLUTION` only (the worked copy shows
  them; the learner's stub, outside the markers, must not change), checked by the release's checksums;
- test cells: their docstring, shown as a note above the test cell, whose source stays English.

The package's own messages (verdicts, reports, plot labels: `_("...")` in `src/leaklab`) have one catalog
per language beside the package, `src/leaklab/locales/<lang>/LC_MESSAGES/leaklab.po`, kept the usual
gettext way: extracted from the code, merged (a changed message keeps its old translation, fuzzy), and
compiled to the `.mo` that `leaklab._i18n` reads at run time.
"""

from __future__ import annotations

import ast
import copy
import datetime
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ._errors import LeaklabError
from ._repo import find_checkout, lessons
from .grading import cells

_SOLUTION = re.compile(r"^[ \t]*### BEGIN SOLUTION.*?^[ \t]*### END SOLUTION[^\n]*$", re.S | re.M)


@dataclass(frozen=True)
class Unit:
    """One translatable piece of a lesson: `context` is the id of the cell it comes from."""

    context: str
    text: str
    kind: str  # "markdown", "code", "answer" or "test"


def locales_dir(checkout: Path) -> Path:
    return checkout / "notebooks" / "locales"


def languages(checkout: Path) -> list[str]:
    """The languages the lessons are translated into (a folder of catalogs each), English aside."""
    found = locales_dir(checkout)
    return sorted(p.name for p in found.iterdir() if (p / "LC_MESSAGES").is_dir()) if found.is_dir() else []


def catalog_path(checkout: Path, language: str, slug: str) -> Path:
    return locales_dir(checkout) / language / "LC_MESSAGES" / f"{slug}.po"


def _docstring(source: str) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    return ast.get_docstring(tree, clean=False)


def units(nb: dict) -> list[Unit]:
    """The translatable pieces of an authored lesson, in cell order."""
    found = []
    for cell in nb["cells"]:
        context, text = cell.get("id", ""), cells.text(cell)
        if not text.strip():
            continue
        if cell["cell_type"] == "markdown":
            found.append(Unit(context, text, "markdown"))
        elif cells.is_answer(cell):
            if "#" in "".join(_SOLUTION.findall(text)):
                found.append(Unit(context, text, "answer"))
        elif cells.is_test(cell):
            doc = _docstring(text)
            if doc:
                found.append(Unit(context, doc, "test"))
        elif not cells.is_locked(cell) and ("#" in text or '"' in text or "'" in text):
            found.append(Unit(context, text, "code"))
    return found


class _BlankStrings(ast.NodeTransformer):
    """Every string literal made empty, an f-string reduced to the set of values it formats."""

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.Constant("") if isinstance(node.value, str) else node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        formatted = sorted(ast.dump(self.visit(v)) for v in node.values if isinstance(v, ast.FormattedValue))
        return ast.Constant("f:" + "|".join(formatted))


def code_skeleton(source: str) -> str:
    """The code with its comments and its strings' words taken out: equal for a cell and its translation."""
    tree = compile(source, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    return ast.dump(_BlankStrings().visit(tree))


def _outside_solution(source: str) -> str:
    return _SOLUTION.sub("### SOLUTION", source)


def problem(unit: Unit, translation: str) -> str | None:
    """Why `translation` cannot stand for `unit` in the lesson (it would change its code), or None."""
    if unit.kind == "markdown" or unit.kind == "test":
        return None
    try:
        same = code_skeleton(translation) == code_skeleton(unit.text)
    except SyntaxError as exc:
        return f"the translated cell is no longer valid Python ({exc.msg}, line {exc.lineno})"
    if not same:
        return "the translated cell's code differs from the English (only comments and strings may change)"
    if unit.kind == "answer" and _outside_solution(translation) != _outside_solution(unit.text):
        return "the answer cell changed outside ### BEGIN SOLUTION .. ### END SOLUTION (the learner's stub)"
    return None


def _read(path: Path, language: str):  # -> babel Catalog
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po

    if not path.exists():
        return Catalog(locale=language, fuzzy=False)
    try:
        with path.open("rb") as stream:
            return read_po(stream, locale=language, abort_invalid=True)
    except Exception as exc:  # babel raises PoFileError, or a ValueError for a bad header
        raise LeaklabError(f"{path}: not a readable gettext catalog ({exc})") from None


def update(checkout: Path, language: str, slug: str, source: dict) -> dict[str, int]:
    """Bring a lesson's catalog in line with its English source: new cells added untranslated, changed
    cells marked fuzzy with their previous English, removed cells dropped. Returns the catalog's counts."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    path = catalog_path(checkout, language, slug)
    old = _read(path, language)
    started = datetime.datetime.now(datetime.UTC)  # a new catalog's dates; an old one keeps its own
    by_context = {m.context: m for m in old if m.id and m.context}
    new = Catalog(
        locale=language,
        project="leaklab",
        version=slug,
        header_comment=f"# {slug} in {language}: one message per cell, its context the cell's id.\n#",
        creation_date=old.creation_date if path.exists() else started,
        revision_date=old.revision_date if path.exists() else started,
        fuzzy=False,
    )
    for unit in units(source):
        before = by_context.get(unit.context)
        message = new.add(unit.text, context=unit.context, auto_comments=[f"{unit.kind} cell"])
        if before is None or not before.string:
            continue
        message.string = before.string
        if before.id != unit.text:
            message.flags.add("fuzzy")
            message.previous_id = [before.id]
        elif before.fuzzy:
            message.flags.add("fuzzy")
            message.previous_id = list(before.previous_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    write_po(out, new, width=0, no_location=True, include_previous=True)
    path.write_bytes(out.getvalue())
    messages = [m for m in new if m.id]
    return {
        "cells": len(messages),
        "fuzzy": sum(m.fuzzy for m in messages),
        "untranslated": sum(not m.string for m in messages),
    }


def stale(checkout: Path, language: str, slug: str, source: dict) -> list[str]:
    """What keeps a lesson's translation from matching its English source, cell by cell."""
    path = catalog_path(checkout, language, slug)
    if not path.exists():
        return [f"{path.relative_to(checkout)}: missing (`make translations` makes it)"]
    catalog, found = _read(path, language), []
    for unit in units(source):
        message = catalog.get(unit.text, context=unit.context)
        if message is None or not message.string:
            later = "its English is new or changed since `make translations` last ran"
            found.append(f"cell {unit.context}: " + ("not translated" if message else later))
        elif message.fuzzy:
            found.append(f"cell {unit.context}: fuzzy (its English changed: translate it again, then clear the flag)")
        elif why := problem(unit, message.string):
            found.append(f"cell {unit.context}: {why}")
    return [f"{path.relative_to(checkout)}: {line}" for line in found]


def translated(checkout: Path, language: str, slug: str, source: dict) -> dict:
    """The authored lesson in `language`; refuses one whose catalog is stale, naming the cells."""
    problems = stale(checkout, language, slug, source)
    if problems:
        raise LeaklabError(
            f"{slug} cannot be built in {language}: its translation does not match the English\n  "
            + "\n  ".join(problems)
            + "\n(`make translations` marks what changed; translate those cells, then clear their fuzzy flag)"
        )
    catalog = _read(catalog_path(checkout, language, slug), language)
    strings = {unit.context: catalog.get(unit.text, context=unit.context).string for unit in units(source)}
    kinds = {unit.context: unit.kind for unit in units(source)}
    nb = copy.deepcopy(source)
    nb["metadata"]["leaklab"] = {"language": language}
    out = []
    for cell in nb["cells"]:
        context = cell.get("id", "")
        if context in strings and kinds[context] == "test":
            out.append(
                {"cell_type": "markdown", "id": f"{context}-{language}", "metadata": {}, "source": strings[context]}
            )
        elif context in strings:
            cell["source"] = strings[context]
        out.append(cell)
    nb["cells"] = out
    return nb


# Pages of docs/ translated with the lessons, which link to them: docs/<name>.md -> docs/<language>/<name>.md.
DOCS = ("glossary",)


def doc_as_notebook(text: str, name: str) -> dict:
    """A markdown page as the cells `units` reads: one per paragraph and one per table row (a table's rule
    as a raw cell, never translated), each remembering what joined it to the one before."""
    found: list[dict] = []
    for block in text.rstrip("\n").split("\n\n"):
        lines = block.split("\n")
        pieces = lines if all(line.startswith("|") for line in lines) else [block]
        for row, piece in enumerate(pieces):
            kind = "raw" if re.fullmatch(r"\|[-:| ]+\|", piece) else "markdown"
            join = "\n" if row else "\n\n"
            found.append({"cell_type": kind, "id": f"{name}-{len(found)}", "metadata": {"join": join}, "source": piece})
    return {"cells": found, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def notebook_as_doc(nb: dict) -> str:
    return "".join(("" if i == 0 else c["metadata"]["join"]) + cells.text(c) for i, c in enumerate(nb["cells"])) + "\n"


def sources(checkout: Path) -> dict[str, dict]:
    """Everything translated, as notebooks by catalog name: the lessons, then the pages of `DOCS`."""
    found = {slug: json.loads(path.read_text(encoding="utf-8")) for slug, path in lessons(checkout).items()}
    for name in DOCS:
        found[name] = doc_as_notebook((checkout / "docs" / f"{name}.md").read_text(encoding="utf-8"), name)
    return found


def update_all(checkout: Path, language: str) -> None:
    """`make translations`: every catalog in `language` brought in line with its English."""
    for name, source in sources(checkout).items():
        counts = update(checkout, language, name, source)
        print(
            f"{catalog_path(checkout, language, name).relative_to(checkout)}: {counts['cells']} cells, "
            f"{counts['fuzzy']} fuzzy, {counts['untranslated']} untranslated"
        )
    counts = update_package(checkout, language)
    print(
        f"{package_catalog_path(checkout, language).relative_to(checkout)}: {counts['messages']} messages, "
        f"{counts['fuzzy']} fuzzy, {counts['untranslated']} untranslated"
    )


_KEYWORDS = {"_": None, "ngettext": (1, 2)}  # leaklab._i18n's two functions
_FIELD = re.compile(r"(?<!\{)\{([^{}]*)\}")


def package_catalog_path(checkout: Path, language: str) -> Path:
    return checkout / "src" / "leaklab" / "locales" / language / "LC_MESSAGES" / "leaklab.po"


def package_messages(checkout: Path):  # -> babel Catalog, the template
    """Every message the package passes to `_` or `ngettext`, with where it is (a template catalog)."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    package = checkout / "src" / "leaklab"
    template = Catalog(project="leaklab", fuzzy=False)
    found = extract_from_dir(
        package, method_map=[("**.py", "python")], keywords=_KEYWORDS, comment_tags=("TRANSLATORS:",)
    )
    for filename, line, message, comments, context in found:
        template.add(message, locations=[(f"leaklab/{filename}", line)], auto_comments=comments, context=context)
    for name, where in _checked_properties(checkout):
        template.add(name, locations=[where], auto_comments=["a graded property, as verdicts and failures name it"])
    return template


_NAMED_CHECKS = re.compile(r"\.(?:require|verdict)\(([^)]*)\)")


def _checked_properties(checkout: Path) -> list[tuple[str, tuple[str, int]]]:
    """The graded properties the lessons' cells name (`run.require("completed_with_result")`), with spaces
    for underscores as the package shows them (`isolation.check_label`): messages no `_()` call spells."""
    found = []
    for slug, path in lessons(checkout).items():
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            for call in _NAMED_CHECKS.finditer(cells.text(cell) if cell["cell_type"] == "code" else ""):
                for name in re.findall(r"[\"']([a-z_]+)[\"']", call.group(1)):
                    found.append((name.replace("_", " "), (f"notebooks/{slug}.ipynb", 0)))
    return found


def update_package(checkout: Path, language: str) -> dict[str, int]:
    """Bring the package's catalog in `language` in line with the code (gettext's merge: a changed
    message keeps its old translation, marked fuzzy), and compile it to the `.mo` read at run time."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    path = package_catalog_path(checkout, language)
    catalog = _read(path, language)
    if not path.exists():
        catalog = Catalog(locale=language, project="leaklab", fuzzy=False)
    catalog.header_comment = f"# leaklab's own messages in {language}: `make translations` keeps it in line.\n#"
    catalog.update(package_messages(checkout), update_header_comment=False, update_creation_date=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    write_po(out, catalog, width=0, sort_by_file=True, ignore_obsolete=True, include_previous=True)
    path.write_bytes(out.getvalue())
    catalog = _read(path, language)  # compiled as written, as `package_stale` compiles it
    path.with_suffix(".mo").write_bytes(_compiled(catalog))
    messages = [m for m in catalog if m.id]
    return {
        "messages": len(messages),
        "fuzzy": sum(m.fuzzy for m in messages),
        "untranslated": sum(not all(_translations(m)) for m in messages),
    }


def _compiled(catalog) -> bytes:
    from babel.messages.mofile import write_mo

    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def _strings(message) -> list[str]:
    return list(message.id) if isinstance(message.id, tuple | list) else [message.id]


def _translations(message) -> list[str]:
    return [message.string] if isinstance(message.string, str) else list(message.string)


def package_stale(checkout: Path, language: str) -> list[str]:
    """What keeps the package's catalog in `language` from matching the code, message by message."""
    path = package_catalog_path(checkout, language)
    where = path.relative_to(checkout)
    if not path.exists():
        return [f"{where}: missing (`make translations` makes it)"]
    catalog, found = _read(path, language), []
    for wanted in package_messages(checkout):
        if not wanted.id:
            continue
        message = catalog.get(wanted.id, context=wanted.context)
        name = _strings(wanted)[0][:60]
        if message is None:
            found.append(f"{name!r}: new or changed in the code since `make translations` last ran")
            continue
        translations = _translations(message)
        if not all(translations):
            found.append(f"{name!r}: not translated")
        elif message.fuzzy:
            found.append(f"{name!r}: fuzzy (its English changed: translate it again, then clear the flag)")
        elif any(set(_FIELD.findall(t)) != set(_FIELD.findall(_strings(wanted)[-1])) for t in translations):
            found.append(f"{name!r}: its translation's {{fields}} are not the English's")
    mo = path.with_suffix(".mo")
    if not found and (not mo.exists() or mo.read_bytes() != _compiled(catalog)):
        found.append(f"{mo.name}: not compiled from the catalog (`make translations` compiles it)")
    return [f"{where}: {line}" for line in found]


def main(argv: list[str]) -> int:
    """`python -m leaklab._translate [--check] [LANGUAGE...]`: update the catalogs, or list what is stale."""
    checkout = find_checkout()
    check = "--check" in argv
    wanted = [a for a in argv if a != "--check"] or languages(checkout)
    if not check:
        for language in wanted:
            update_all(checkout, language)
        return 0
    found = [
        line
        for language in wanted
        for name, source in sources(checkout).items()
        for line in stale(checkout, language, name, source)
    ]
    found += [line for language in wanted for line in package_stale(checkout, language)]
    print("\n".join(found) or "every translation matches its English")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
