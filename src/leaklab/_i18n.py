"""leaklab's own messages (verdicts, reports, plot labels) in the language of the lesson being run.

The language is the notebook's: `LEAKLAB_LANG` where it is set (the graders set it from the submission's
metadata, `make lab LEAKLAB_LANG=zh_CN` for the lab's kernels), else the `leaklab.language` metadata of
the notebook JupyterLab started this kernel for (`JPY_SESSION_NAME`), else English. The catalogs are
gettext's: `locales/<lang>/LC_MESSAGES/leaklab.po`, extracted from the package and compiled to `.mo` by
`make translations` (`leaklab._translate`), read here with the standard library.
"""

from __future__ import annotations

import contextlib
import gettext
import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

LANGUAGE_ENV = "LEAKLAB_LANG"
DOMAIN = "leaklab"
LOCALES = Path(__file__).parent / "locales"


def languages() -> list[str]:
    """The languages leaklab's messages are translated into (English, the source, not among them)."""
    return list(_compiled())


@cache
def _compiled() -> tuple[str, ...]:  # looked for once: `_` asks at every message
    return tuple(sorted(p.parent.parent.name for p in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")))


def known(language: object) -> str | None:
    """`language` if leaklab speaks it (a notebook's metadata is the learner's to write), else None."""
    return language if isinstance(language, str) and language in _compiled() else None


def language() -> str:
    """The language of this process's messages: "en" or one of `languages()`."""
    chosen = os.environ.get(LANGUAGE_ENV) or _notebook_language(os.environ.get("JPY_SESSION_NAME", ""))
    return known(chosen) or "en"


def notebook_language(notebook: dict) -> str:
    """The language a notebook's lesson is written in, by its metadata: "en" unless leaklab speaks it."""
    metadata = notebook.get("metadata") if isinstance(notebook, dict) else None
    ours = metadata.get("leaklab") if isinstance(metadata, dict) else None  # a submission's: any shape at all
    return known(ours.get("language") if isinstance(ours, dict) else None) or "en"


@contextlib.contextmanager
def speaking(language: str) -> Iterator[None]:
    """`LEAKLAB_LANG` set to `language` for what starts meanwhile (a kernel, an isolated run), then as before:
    how the build and the graders run a notebook in the language of its lesson."""
    before = os.environ.get(LANGUAGE_ENV)
    os.environ[LANGUAGE_ENV] = language
    try:
        yield
    finally:
        if before is None:
            del os.environ[LANGUAGE_ENV]
        else:
            os.environ[LANGUAGE_ENV] = before


@cache
def _notebook_language(path: str) -> str | None:
    """The language of the notebook at `path` (absolute, or relative to the kernel's folder, where the
    notebook is), None where there is no such notebook to read."""
    if not path.endswith(".ipynb"):
        return None
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.basename(path)
    with contextlib.suppress(OSError, ValueError):
        return notebook_language(json.loads(Path(path).read_text(encoding="utf-8")))
    return None


@cache
def _catalog(language: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, LOCALES, languages=[language], fallback=True)


def messages() -> gettext.NullTranslations:
    """The current language's catalog, read once per language and process."""
    return _catalog(language())


def _(message: str, /, **values: object) -> str:
    """`message` in the current language, its `{name}` fields filled from `values` (none: as it is)."""
    return _filled(messages().gettext(message), message, values)


def ngettext(singular: str, plural: str, n: int, /, **values: object) -> str:
    """The form of a message for `n` things, in the current language; `{n}` and `values` filled in."""
    english = singular if n == 1 else plural
    return _filled(messages().ngettext(singular, plural, n), english, {"n": n, **values})


def _filled(text: str, english: str, values: dict[str, object]) -> str:
    if not (isinstance(text, str) and text.strip()):  # a check's problem must never read as "no problem"
        text = english
    if not values:
        return text
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):  # a translation that names a field wrongly: the English
        return english.format(**values)
