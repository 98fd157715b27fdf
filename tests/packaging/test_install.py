"""`pip install leaklab` alone gives a course that works: every lesson and the grader, in a fresh venv.

A JupyterHub image or a plain venv installs the package, not requirements.lock nor the `test` extra: a tool a
lesson runs that only the lock brings (ruff, for lesson 07, once) breaks the lesson there and nowhere else.
So the working tree is installed on its own into a new venv, and from that venv, with the Makefile's
environment, (a) `leaklab grade` gives every solution full marks and (b) every solution runs from start to end
in the venv's own kernel. (b) is needed too: a lesson cell that fails outside the test cells costs no points.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SECONDS = 900  # 11 s here from PyPI with an empty uv cache, 45 s with pip; slower registries exist
GRADE_SECONDS = 900  # each of the two runs of the eight solutions takes about 30 s here (2 cores)
# Set to `lowest-direct` to check the lower bounds in pyproject.toml (with uv only): every direct dependency
# at the oldest release they allow.
RESOLUTION = os.environ.get("LEAKLAB_INSTALL_RESOLUTION", "")


@dataclass(frozen=True)
class Install:
    """A fresh venv with leaklab installed in it, the copy of the course it came from, and its environment."""

    venv: Path
    course: Path
    workdir: Path  # where the commands run: nothing of the checkout is importable from here
    env: dict[str, str]
    seconds: float

    def run(self, *args: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args], cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=timeout
        )


def _index_url() -> str:
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if os.environ.get(name):
            return os.environ[name].rstrip("/")
    return "https://pypi.org/simple"


def _registry_unreachable() -> str | None:
    """Why the package index cannot be reached (a few seconds at most), or None when it can."""
    url = f"{_index_url()}/pip/"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5):
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"


def _copy_working_tree(destination: Path) -> None:
    """The files git would see in the checkout now: tracked ones as they are on disk (the work in progress
    included, not HEAD's), and new ones not ignored; no .venv, no .leaklab, no build leftovers."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, set(listed.split("\0"))):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is deleted in the copy too
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def _install_commands(venv: Path, course: Path) -> list[list[str]]:
    """uv when it is there (the Makefile installs it; parallel downloads, a shared cache), otherwise pip."""
    uv = shutil.which("uv", path=Path(sys.executable).parent) or shutil.which("uv")
    python = str(venv / "bin" / "python")
    if uv:
        # --native-tls: the machine's certificates, as the Makefile's; bytecode compiled as pip does, since
        # PYTHONDONTWRITEBYTECODE may be set and every grading process would otherwise compile its imports.
        install = [uv, "pip", "install", "--quiet", "--native-tls", "--compile-bytecode", "--python", python]
        if RESOLUTION:
            install += ["--resolution", RESOLUTION]
        return [[uv, "venv", "--quiet", "--native-tls", "--python", sys.executable, str(venv)], [*install, str(course)]]
    if RESOLUTION:
        pytest.skip(f"LEAKLAB_INSTALL_RESOLUTION={RESOLUTION} needs uv, and there is none")
    return [[sys.executable, "-m", "venv", str(venv)], [python, "-m", "pip", "install", "--quiet", str(course)]]


def _environment(venv: Path, course: Path, state: Path) -> dict[str, str]:
    """The Makefile's exports, pointed at the copy and at a throwaway folder, with the new venv first on PATH
    and nothing of the checkout's venv left: a tool found there would hide one missing here."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    in_a_venv = sys.prefix != sys.base_prefix
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if not (in_a_venv and p.startswith(sys.prefix))]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["JUPYTER_CONFIG_DIR"] = str(course / "grader" / "jupyter")
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    for name, folder in {
        "JUPYTER_DATA_DIR": "jupyter/data",
        "JUPYTER_RUNTIME_DIR": "jupyter/runtime",
        "JUPYTERLAB_SETTINGS_DIR": "jupyter/lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "jupyter/lab-workspaces",
        "IPYTHONDIR": "ipython",
        "MPLCONFIGDIR": "matplotlib",
        "LEAKLAB_ARTEFACTS": "runs",
    }.items():
        env[name] = str(state / folder)
    return env


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Iterator[Install]:
    """leaklab from the working tree, installed alone (no lock, no extras, not editable) into a new venv."""
    unreachable = _registry_unreachable()
    if unreachable:
        pytest.skip(f"no package registry reachable, and the test installs leaklab from one ({unreachable})")
    top = tmp_path_factory.mktemp("install")
    course, venv, state = top / "course", top / "venv", top / "state"
    workdir = state / "work"
    workdir.mkdir(parents=True)
    _copy_working_tree(course)
    env = _environment(venv, course, state)
    started = time.monotonic()
    for command in _install_commands(venv, course):
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=INSTALL_SECONDS)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{_tail(done.stderr + done.stdout)}"
    yield Install(venv, course, workdir, env, time.monotonic() - started)
    shutil.rmtree(venv, ignore_errors=True)  # about 450 MB; the copy and the run's state stay for a look


def test_the_grader_gives_every_solution_full_marks(installed: Install):
    """`leaklab grade` from the new venv gives each of the eight solutions every point, without an error."""
    solutions = sorted((installed.course / "solutions").glob("*.ipynb"))
    assert len(solutions) == 8, f"expected the eight lessons' solutions, found {[p.name for p in solutions]}"

    started = time.monotonic()
    leaklab = installed.venv / "bin" / "leaklab"
    done = installed.run(leaklab, "grade", "--json", *solutions, "--course", installed.course, timeout=GRADE_SECONDS)
    print(f"install {installed.seconds:.0f} s, grade {time.monotonic() - started:.0f} s")

    assert done.stdout.strip(), f"`leaklab grade` printed nothing (exit {done.returncode}):\n{_tail(done.stderr)}"
    results = {Path(r["notebook"]).name: r for r in json.loads(done.stdout)["results"]}
    assert sorted(results) == [p.name for p in solutions]
    short = {
        name: r["error"] or {t: v for t, v in r["tests"].items() if v.get("score") != v.get("max_score")}
        for name, r in results.items()
        if r["error"] is not None or not 0 < r["max_score"] == r["score"]
    }
    assert not short, f"solutions short of full marks:\n{json.dumps(short, indent=1)}\n{_tail(done.stderr)}"


def test_every_lesson_runs_in_the_new_venvs_kernel(installed: Install):
    """Every solution runs without an error in the `python3` kernel, which is the new venv's python with its
    installed leaklab (not the checkout's venv, not src/)."""
    solutions = sorted((installed.course / "solutions").glob("*.ipynb"))
    script = Path(__file__).with_name("run_solutions.py")

    started = time.monotonic()
    done = installed.run(installed.venv / "bin" / "python", script, *solutions, timeout=GRADE_SECONDS)
    print(f"solutions run in {time.monotonic() - started:.0f} s")

    assert done.returncode == 0, f"running the solutions failed:\n{_tail(done.stderr + done.stdout)}"
    report = json.loads(done.stdout)
    site = installed.venv / "lib"
    for path, result in report.items():
        name = Path(path).name
        assert not result["errors"], f"{name} fails in a venv with only leaklab installed: {result['errors']}"
        assert len(result["kernel"]) == 2, f"{name}: the kernel did not say what it runs: {result['last_cell']}"
        executable, package = map(Path, result["kernel"])
        assert executable.parent == installed.venv / "bin", f"{name} ran in {executable}, not the new venv"
        assert package.is_relative_to(site), f"{name} imported leaklab from {package}, not the new venv"
