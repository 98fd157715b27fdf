"""Where things are: the leaklab checkout, its lessons, and the folder for run artefacts.

Everything above this module (grading, building, the course, the CLI) may use it; it imports nothing
heavier than the standard library, so that nbgrader's config and the CLI's start-up stay quick.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import LeaklabError

ARTEFACTS_ENV = "LEAKLAB_ARTEFACTS"


def find_checkout(start: Path | None = None) -> Path:
    """The leaklab checkout: the nearest folder above `start` with `notebooks/` and `grader/`, else the
    checkout this package was installed from (an instructor's course folder lies elsewhere)."""
    here = (start or Path.cwd()).resolve()
    installed_from = Path(__file__).resolve().parents[2]  # `make` installs the package from the checkout
    for folder in (here, *here.parents, installed_from):
        if (folder / "notebooks").is_dir() and (folder / "grader" / "nbgrader_config.py").is_file():
            return folder
    raise LeaklabError(
        f"no leaklab course found at or above {here}: run this inside the leaklab checkout, "
        "or pass --course pointing at it (the folder with notebooks/ and grader/)"
    )


def lessons(checkout: Path) -> dict[str, Path]:
    """The authored lessons of a checkout, by slug (`01_forgotten_cancel`)."""
    return {path.stem: path for path in sorted((checkout / "notebooks").glob("[0-9][0-9]_*.ipynb"))}


def release_of(checkout: Path, slug: str) -> Path:
    """A lesson's student version as released: the checkout's generated exercise."""
    return checkout / "exercises" / f"{slug}.ipynb"


def artefacts_dir(kind: str) -> Path:
    """A git-ignored folder for run artefacts (captures, plots): `$LEAKLAB_ARTEFACTS` or `./.leaklab`."""
    # Absolute: a sandbox's bind of a file in it is resolved from wherever the sandbox starts.
    folder = Path(os.environ.get(ARTEFACTS_ENV, ".leaklab")).absolute() / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder
