"""The browser test's machinery: JupyterLab started the way `make lab` starts it, stopped with all it started."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".leaklab" / "screenshots"  # git-ignored with the rest of .leaklab/
# Debian's Chromium, driven by Playwright: Playwright's own browser download is not needed (or possible here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LAB_START_TIMEOUT = 90.0  # seconds; a cold start on a loaded 2-core VM takes 5-15 s
LAB_STOP_TIMEOUT = 30.0


def find_chromium() -> str | None:
    """The browser to drive: $LEAKLAB_CHROMIUM, else Debian's `chromium` (or Ubuntu's `chromium-browser`)."""
    named = os.environ.get("LEAKLAB_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Lab:
    """A running JupyterLab server: where it listens, its token, and the learner's workspace folder."""

    url: str
    token: str
    workspace: Path
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, *, method: str = "GET") -> bytes:
        """One authenticated request to the server's REST API."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def wait_for_kernel(self, *, timeout: float = 90.0) -> None:
        """Until the server runs exactly one kernel, idle, with a browser connected to it (JupyterLab may start
        a second one and drop the first just after a notebook opens on a loaded machine)."""
        deadline = time.monotonic() + timeout
        while True:
            kernels = json.loads(self.api("/api/kernels"))
            if len(kernels) == 1 and kernels[0]["execution_state"] == "idle" and kernels[0]["connections"] >= 1:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no single connected idle kernel after {timeout:.0f} s: {kernels}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for a failure message."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    """A port nobody listens on right now (the server is told not to try others)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every process started by `pid`, at any depth (kernels run in their own session, so no killpg)."""
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(pids: list[int]) -> list[int]:
    """The processes among `pids` that still run (zombies count as gone)."""
    import psutil

    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def stop_lab(lab: Lab) -> list[int]:
    """Shut the server down the polite way (kernels first), then firmly; return what had to be killed."""
    process = lab.process
    started: list[int] = []
    if process.poll() is None:
        started = _descendants(process.pid)
        try:
            for kernel_id in _kernel_ids(lab):
                lab.api(f"/api/kernels/{kernel_id}", method="DELETE")
            lab.api("/api/shutdown", method="POST")
        except (OSError, urllib.error.URLError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=LAB_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(started) and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = _alive(started)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    return killed


def _kernel_ids(lab: Lab) -> list[str]:
    """The kernels the server runs now."""
    return [kernel["id"] for kernel in json.loads(lab.api("/api/kernels"))]


def start_lab(home: Path, language: str | None = None) -> Lab:
    """JupyterLab as `make lab LAB_ARGS=--no-browser [LEAKLAB_LANG=language]` starts it, on a copy of
    exercises/ (or exercises/<language>/, with the interface in that language) in `home`/workspace."""
    workspace = home / "workspace"
    workspace.mkdir()
    for notebook in sorted((ROOT / "exercises" / (language or "")).glob("*.ipynb")):
        shutil.copy(notebook, workspace)
    if language:
        plugin = home / "lab-settings" / "@jupyterlab" / "translation-extension" / "plugin.jupyterlab-settings"
        plugin.parent.mkdir(parents=True)
        plugin.write_text(json.dumps({"locale": language}))
    token = secrets.token_hex(16)
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    # The Makefile's environment: the course's config from grader/jupyter (Validate needs it); what the lab
    # writes (runtime files, settings, remembered layout, run artefacts) goes to the temp folder instead.
    env = os.environ | {
        "JUPYTER_CONFIG_DIR": str(ROOT / "grader" / "jupyter"),
        "JUPYTER_DATA_DIR": str(ROOT / ".leaklab" / "jupyter" / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(ROOT / ".leaklab" / "ipython"),
        "MPLCONFIGDIR": str(ROOT / ".leaklab" / "matplotlib"),
        "LEAKLAB_ARTEFACTS": str(home / "runs"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "LEAKLAB_LANG": language or "",
    }
    command = [
        str(bin_dir / "jupyter"),
        "lab",
        f"--notebook-dir={workspace}",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]
    log = home / "lab.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    running = Lab(f"http://127.0.0.1:{port}", token, workspace, process, log)
    deadline = time.monotonic() + LAB_START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}:\n{running.log_tail()}")
        try:
            running.api("/api/status")
            return running
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                stop_lab(running)
                raise RuntimeError(
                    f"JupyterLab did not answer in {LAB_START_TIMEOUT:.0f} s:\n{running.log_tail()}"
                ) from None
            time.sleep(0.2)
