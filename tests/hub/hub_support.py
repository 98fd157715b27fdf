"""The hub test's machinery: real Unix users, the workshop's hub started from grader/hub/jupyterhub_config.py,
people using it over HTTP the way their browser would, and a journal that undoes all of it, even after a
crash (the next run reads it first).

Everything here acts on the machine as root: users are created and deleted, folders on the way to the
course's Python opened to other users (o+x) and closed again. Names carry the `llhub-` prefix so that they
never touch a real account.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
CONFIG = ROOT / "grader" / "hub" / "jupyterhub_config.py"
INSTALL_PROXY = ROOT / "grader" / "hub" / "install-proxy.sh"
WORK = ROOT / ".leaklab" / "hub"  # git-ignored: the proxy's node_modules, the timings of the last run
# The users are the machine's, not the checkout's: so is the record of what to undo (it must outlive a deleted
# CI checkout). Removed at the end of every run.
MACHINE = Path("/var/tmp/leaklab-hub-test")
JOURNAL = MACHINE / "journal.json"
INSTRUCTOR = "llhub-teacher"
STUDENTS = ("llhub-ana", "llhub-ben")
COURSE_ID = "leaklab"
SLUG = "01_forgotten_cancel"
HUB_START_TIMEOUT = 90.0  # seconds; the hub itself starts in 1-2 s on a quiet machine
SERVER_START_TIMEOUT = 120.0  # one user's JupyterLab, cold, on a loaded 2-core machine: 5-30 s
HUB_STOP_TIMEOUT = 90.0  # the hub gives each server 30 s after SIGINT, then SIGTERM
COMMAND_TIMEOUT = 300.0  # a command typed into a terminal: `leaklab course` generates eight lessons
REQUEST_TIMEOUT = 120.0  # one HTTP request: nbgrader's fetch, submit, release and collect run inside it
TOOLS = ("useradd", "userdel", "chpasswd", "runuser")
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")  # where processes leave files outside their home


class Unavailable(Exception):
    """The machine cannot run the hub test; the message says why (it becomes "hub skipped: <why>")."""


# --- what the machine must offer -------------------------------------------------------------------------------


def preflight() -> str | None:
    """Why the hub test cannot run here, or None when it can (the proxy is installed on the way)."""
    if not sys.platform.startswith("linux"):
        return "hub skipped: it needs Linux (local Unix users, PAM)"
    if os.geteuid() != 0:
        return "hub skipped: it creates Unix users and runs JupyterHub as root; run `make hub` as root (CI does)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"hub skipped: {', '.join(missing)} not found (the shadow and util-linux tools create and run users)"
    try:
        import jupyterhub  # noqa: F401
        import pamela  # noqa: F401 - loads libpam
    except (ImportError, OSError) as exc:
        return f"hub skipped: JupyterHub or PAM is not usable from {VENV} ({exc}); `make` installs jupyterhub"
    installed = subprocess.run(["sh", str(INSTALL_PROXY)], capture_output=True, text=True)
    if installed.returncode != 0:
        return f"hub skipped: {installed.stderr.strip()}"
    return None


def proxy_path() -> str:
    """configurable-http-proxy as grader/hub/install-proxy.sh installed it (preflight ran it)."""
    return subprocess.run(["sh", str(INSTALL_PROXY)], capture_output=True, text=True, check=True).stdout.strip()


# --- the journal: what to undo, written before each change ------------------------------------------------------


@dataclass
class Journal:
    """Everything the test changed on the machine, saved before each change so that any run can undo it."""

    users: list[str] = field(default_factory=list)  # created by the test
    modes: dict[str, int] = field(default_factory=dict)  # folder -> its mode before the test opened it
    temp: str = ""  # the test's temp folder (exchange, hub state, logs)
    hub_pid: int = 0

    def save(self) -> None:
        """Write the journal atomically."""
        MACHINE.mkdir(mode=0o700, exist_ok=True)
        staging = JOURNAL.with_suffix(".tmp")
        staging.write_text(json.dumps(asdict(self)))
        staging.replace(JOURNAL)

    @classmethod
    def load(cls) -> Journal | None:
        """The journal of an earlier run that did not finish its clean-up, if any."""
        try:
            return cls(**json.loads(JOURNAL.read_text()))
        except (OSError, ValueError, TypeError):
            return None


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """One hub test at a time on a machine, from any checkout: they would share user names and the journal.
    The folder holding the lock and the journal is removed at the end, unless a journal is left to undo."""
    MACHINE.mkdir(mode=0o700, exist_ok=True)
    with (MACHINE / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Unavailable("hub skipped: another hub test is running on this machine") from None
        try:
            yield
        finally:
            if not JOURNAL.exists():
                shutil.rmtree(MACHINE, ignore_errors=True)


def user_exists(name: str) -> bool:
    """Whether the system knows this user."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def processes_of(users: list[str] | tuple[str, ...]) -> list[int]:
    """The live processes that run as any of these users (zombies excluded)."""
    import psutil

    uids = set()
    for name in users:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(name).pw_uid)
    found = []
    for process in psutil.process_iter(["uids", "status"]):
        info = process.info
        if info["uids"] and info["uids"].real in uids and info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process.pid)
    return found


def left_after(
    users: list[str] | tuple[str, ...], ports: set[int], *, timeout: float = 20.0
) -> tuple[list[int], list[str]]:
    """The users' processes and the listeners on `ports` still there once they had `timeout` seconds to end
    (a server's kernels and terminals exit just after it)."""
    deadline = time.monotonic() + timeout
    while True:
        processes, listening = processes_of(users), listening_on(ports)
        if not (processes or listening) or time.monotonic() > deadline:
            return processes, listening
        time.sleep(0.2)


def files_of(users: list[str] | tuple[str, ...], *, skip: str = "") -> list[str]:
    """Files and folders the users own in the machine's scratch folders (/tmp, /var/tmp, /dev/shm), outside
    `skip`: what their processes left where a deleted user's home does not take it along."""
    uids = set()
    for name in users:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(name).pw_uid)
    found: list[str] = []
    for top in SCRATCH:
        for folder, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    if path != skip and os.lstat(path).st_uid in uids:
                        found.append(path)
            dirs[:] = [name for name in dirs if os.path.join(folder, name) not in (skip, *found)]
    return found


def listening_on(ports: list[int] | set[int]) -> list[str]:
    """Which of these TCP ports something listens on, as "port (pid)"."""
    import psutil

    return [
        f"{conn.laddr.port} (pid {conn.pid})"
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port in ports
    ]


def _kill_all(pids: list[int], *, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL what is left after `grace` seconds."""
    import psutil

    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace)


def _pid_from(file: Path, command_part: str) -> int:
    """The pid in a pid file, if that process still runs and its command line mentions `command_part`."""
    import psutil

    try:
        pid = int(file.read_text().strip())
        if command_part in " ".join(psutil.Process(pid).cmdline()):
            return pid
    except (OSError, ValueError, psutil.Error):
        pass
    return 0


def undo(journal: Journal) -> list[str]:
    """Undo what the journal records, in the safe order; returns what had to be forced (empty when nothing)."""
    forced = []
    state = Path(journal.temp) / "state"
    running = [
        pid
        for pid in (
            _pid_from(state / "jupyterhub.pid", "jupyterhub") if journal.temp else 0,
            _pid_from(state / "proxy.pid", "configurable-http-proxy") if journal.temp else 0,
            journal.hub_pid if journal.hub_pid and "jupyterhub" in " ".join(_cmdline(journal.hub_pid)) else 0,
        )
        if pid
    ]
    if running:
        forced.append(f"hub or proxy still running: {sorted(set(running))}")
        _kill_all(sorted(set(running)))
    left = processes_of(journal.users)
    if left:
        forced.append(f"processes of the test users still running: {left}")
        _kill_all(left, grace=5.0)
    for path in files_of(journal.users, skip=journal.temp):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
    for name in journal.users:
        if user_exists(name):
            deleted = subprocess.run(["userdel", "--remove", name], capture_output=True, text=True)
            if deleted.returncode not in (0, 12):  # 12: the home could not be removed (the test checks homes)
                forced.append(f"userdel {name}: {deleted.stderr.strip()}")
    for folder, mode in journal.modes.items():
        with contextlib.suppress(FileNotFoundError):
            os.chmod(folder, mode)
    if journal.temp:
        shutil.rmtree(journal.temp, ignore_errors=True)
    JOURNAL.unlink(missing_ok=True)
    return forced


def _cmdline(pid: int) -> list[str]:
    import psutil

    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


# --- the class: users, reachable course files, a temp folder ----------------------------------------------------


@dataclass
class Classroom:
    """The test's users with their passwords, and the temp folder holding the exchange and the hub's state."""

    journal: Journal
    passwords: dict[str, str]
    temp: Path

    @property
    def exchange(self) -> Path:
        return self.temp / "exchange"


def _create_user(name: str) -> str:
    """A local user with a private home and a login shell, and a random password set through PAM's files."""
    subprocess.run(
        [
            "useradd",
            "--create-home",
            "--shell",
            "/bin/bash",
            "-K",
            "HOME_MODE=0700",
            "--comment",
            "leaklab hub test",
            name,
        ],
        check=True,
        capture_output=True,
    )
    password = secrets.token_urlsafe(18)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, capture_output=True)
    return password


def _closed_folders(paths: list[Path]) -> list[Path]:
    """Folders on the way to these paths (symlinks followed) that other users cannot enter."""
    closed: list[Path] = []
    for path in paths:
        for folder in reversed(path.resolve().parents):
            if not folder.stat().st_mode & stat.S_IXOTH and folder not in closed:
                closed.append(folder)
    return closed


def _as(user: str, *command: str) -> subprocess.CompletedProcess[str]:
    """A command run as `user`, in a clean environment."""
    return subprocess.run(
        ["runuser", "-u", user, "--", "env", "-i", f"HOME={pwd.getpwnam(user).pw_dir}", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextlib.contextmanager
def classroom() -> Iterator[Classroom]:
    """The instructor and students as real users, the course's files reachable by them; all undone at the end.

    Folders on the way to the checkout, the venv and its Python that other users cannot enter get o+x for
    the test (e.g. /root, when the Python comes from pyenv) and their mode back afterwards.
    """
    with exclusive():
        leftover = Journal.load()
        if leftover is not None:  # a run that crashed: its hub, users, processes, files and modes
            forced = undo(leftover)
            warnings.warn(
                f"undid what an interrupted hub test left behind: {forced or 'users and modes'}", stacklevel=2
            )
        users = [INSTRUCTOR, *STUDENTS]
        taken = [name for name in users if user_exists(name)]
        if taken:
            raise Unavailable(f"hub skipped: the users {', '.join(taken)} exist and this test did not create them")
        journal = Journal()
        temp = Path(tempfile.mkdtemp(prefix="llhub-"))
        journal.temp = str(temp)
        journal.save()
        try:
            temp.chmod(0o755)  # the exchange lives in here
            passwords = {}
            for name in users:
                journal.users.append(name)
                journal.save()
                passwords[name] = _create_user(name)
            needed = [ROOT, VENV / "bin" / "python", Path(sys.base_prefix) / "lib"]
            for folder in _closed_folders(needed):
                journal.modes[str(folder)] = stat.S_IMODE(folder.stat().st_mode)
                journal.save()
                folder.chmod(journal.modes[str(folder)] | stat.S_IXOTH)
            check = _as(INSTRUCTOR, str(VENV / "bin" / "python"), "-c", "import jupyterhub, leaklab, nbgrader")
            readable = _as(INSTRUCTOR, "test", "-r", str(ROOT / "notebooks" / f"{SLUG}.ipynb"))
            if check.returncode != 0 or readable.returncode != 0:
                raise Unavailable(
                    f"hub skipped: the checkout or its venv is not readable by other users even with o+x on the "
                    f"folders above it ({check.stderr.strip()[-300:] or 'notebooks/ not readable'}); "
                    "clone with a umask of 022"
                )
            yield Classroom(journal, passwords, temp)
        finally:
            forced = undo(journal)
            if forced:
                raise AssertionError(f"the clean-up had to force: {forced}")


# --- the hub ------------------------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now, all different."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


@dataclass
class Hub:
    """The workshop's hub, started by the test from grader/hub/jupyterhub_config.py."""

    url: str
    ports: list[int]
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 60) -> str:
        """The end of the hub's log (single-user servers log there too), for a failure message."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        """SIGTERM, as `systemctl stop` would: the hub stops every server and the proxy, then exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=HUB_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"the hub did not stop within {HUB_STOP_TIMEOUT:.0f} s:\n{self.log_tail()}") from None


def start_hub(room: Classroom) -> Hub:
    """The hub as an instructor starts it (`jupyterhub -f grader/hub/jupyterhub_config.py`, as root), set up
    through the config's documented environment variables only."""
    import requests

    port, api_port, internal_port = free_ports(3)
    env = os.environ | {
        "LEAKLAB_HUB_INSTRUCTOR": INSTRUCTOR,
        "LEAKLAB_HUB_STUDENTS": ",".join(STUDENTS),
        "LEAKLAB_EXCHANGE": str(room.exchange),
        "LEAKLAB_VENV": str(VENV),
        "LEAKLAB_HUB_PORT": str(port),
        "LEAKLAB_HUB_API_PORT": str(api_port),
        "LEAKLAB_HUB_INTERNAL_PORT": str(internal_port),
        "LEAKLAB_HUB_STATE": str(room.temp / "state"),
        "LEAKLAB_HUB_PROXY": proxy_path(),
    }
    log = room.temp / "hub.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VENV / "bin" / "jupyterhub"), "-f", str(CONFIG)],
            cwd=room.temp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C on the test reaches the test; it stops the hub itself
        )
    room.journal.hub_pid = process.pid
    room.journal.save()
    hub = Hub(f"http://127.0.0.1:{port}", [port, api_port, internal_port], process, log)
    deadline = time.monotonic() + HUB_START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the hub exited with code {process.returncode}:\n{hub.log_tail()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{hub.url}/hub/api/", timeout=5).status_code == 200:
                return hub
        if time.monotonic() > deadline:
            raise AssertionError(f"the hub did not answer within {HUB_START_TIMEOUT:.0f} s:\n{hub.log_tail()}")
        time.sleep(0.2)


# --- a person at a browser ------------------------------------------------------------------------------------------


class Person:
    """One user of the hub, doing over HTTP what their browser does: the login form, the spawn page, and then
    the requests JupyterLab's Assignments tab, formgrader, the file browser and the terminal send."""

    def __init__(self, hub: Hub, name: str, password: str) -> None:
        import requests

        self.hub = hub
        self.name = name
        self.password = password
        self.session = requests.Session()
        self.server = f"{hub.url}/user/{name}"

    def log_in(self) -> bool:
        """The hub's login form, with the user's Unix password (PAM checks it); whether the hub let them in."""
        form = self.session.get(f"{self.hub.url}/hub/login", timeout=REQUEST_TIMEOUT)
        form.raise_for_status()
        answer = self.session.post(
            f"{self.hub.url}/hub/login",
            data={"username": self.name, "password": self.password, "_xsrf": self._cookie("_xsrf", "/hub/")},
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT,
        )
        # In: a redirect onwards (to the spawn page). Out: the login form again, with HTTP 403.
        return answer.status_code == 302 and "/hub/login" not in answer.headers.get("Location", "")

    def start_server(self) -> None:
        """The spawn page starts the user's server; wait until the hub says it is ready, then open the lab
        (which passes the hub's OAuth hand-shake and sets the server's cookies)."""
        # The hub answers once the spawn is under way (or done, or failed): from then on the user's model
        # shows it pending or ready, and neither means it failed.
        self.session.get(f"{self.hub.url}/hub/spawn", allow_redirects=False, timeout=REQUEST_TIMEOUT)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            model = self.hub_api(f"users/{self.name}")
            server = model.get("servers", {}).get("", {})
            if server.get("ready"):
                break
            if not server.get("pending") and not model.get("pending"):
                raise AssertionError(f"{self.name}'s server failed to start: {model}\n{self.hub.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}'s server not ready in {SERVER_START_TIMEOUT:.0f} s:\n{self.hub.log_tail()}"
                )
            time.sleep(0.3)
        lab = self.session.get(f"{self.server}/lab", timeout=REQUEST_TIMEOUT)
        if lab.status_code != 200 or not lab.url.startswith(f"{self.server}/lab"):
            raise AssertionError(f"{self.name}'s lab did not open: HTTP {lab.status_code} at {lab.url}")

    def hub_api(self, path: str) -> dict:
        """A GET on the hub's REST API, with the login cookie (as the hub's own pages do)."""
        answer = self.session.get(
            f"{self.hub.url}/hub/api/{path}",
            headers={"X-XSRFToken": self._cookie("_xsrf", "/hub/")},
            timeout=REQUEST_TIMEOUT,
        )
        answer.raise_for_status()
        return answer.json()

    def call(
        self, method: str, path: str, *, body: object = None, params: dict | None = None, expect: int = 200
    ) -> Any:
        """A request to the user's own server (through the proxy), as JupyterLab sends it; returns the JSON
        answer (None when empty, or when `expect` is an error status and the server answered it)."""
        answer = self.session.request(
            method,
            f"{self.server}/{path}",
            params=params,
            data=None if body is None else json.dumps(body),
            headers={"X-XSRFToken": self._cookie("_xsrf", f"/user/{self.name}/"), "Content-Type": "application/json"},
            timeout=REQUEST_TIMEOUT,
        )
        if answer.status_code == expect and expect >= 400:
            return None
        if answer.status_code >= 400 or (expect >= 400):
            raise AssertionError(
                f"{method} {path} as {self.name}: HTTP {answer.status_code} (expected {expect}): {answer.text[:500]}"
            )
        return json.loads(answer.text) if answer.text else None

    def terminal(self, command: str, *, timeout: float = COMMAND_TIMEOUT) -> tuple[int, str]:
        """Type a command into a new JupyterLab terminal of the user's server and read what it prints until
        it ends; returns its exit status and the output. The terminal is closed afterwards."""
        import websocket

        name = self.call("POST", "api/terminals")["name"]
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.session.cookies)
        url = f"{self.server.replace('http://', 'ws://')}/terminals/websocket/{name}"
        ws = websocket.create_connection(url, cookie=cookies, timeout=timeout)
        output = ""
        try:
            # The marker is printed as one word but typed as two, so the echo of the typed line never matches.
            ws.send(json.dumps(["stdin", f"{command}; printf '%s_%s %s\\n' LEAKLAB DONE $?\r"]))
            deadline = time.monotonic() + timeout
            while (done := re.search(r"LEAKLAB_DONE (\d+)", output)) is None:
                ws.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    message = json.loads(ws.recv())
                except websocket.WebSocketTimeoutException:
                    raise AssertionError(f"`{command}` did not finish in {timeout:.0f} s:\n{output[-3000:]}") from None
                if message[0] == "stdout":
                    output += message[1]
                elif message[0] == "disconnect":
                    raise AssertionError(f"the terminal closed during `{command}`:\n{output[-3000:]}")
            return int(done.group(1)), output
        finally:
            ws.close()
            self.call("DELETE", f"api/terminals/{name}")

    def contents(self, path: str) -> dict:
        """A file of the user's, as the file browser reads it."""
        return self.call("GET", f"api/contents/{path}", params={"content": "1"})

    def save_notebook(self, path: str, notebook: dict) -> None:
        """Save a notebook, as JupyterLab's save does."""
        self.call("PUT", f"api/contents/{path}", body={"type": "notebook", "format": "json", "content": notebook})

    def _cookie(self, name: str, path: str) -> str:
        """A cookie's value for one path (the hub and each server set their own `_xsrf`)."""
        for cookie in self.session.cookies:
            if cookie.name == name and cookie.path == path:
                return cookie.value
        raise AssertionError(f"no {name} cookie for {path} in {self.name}'s browser: {list(self.session.cookies)}")

    def close(self) -> None:
        """Forget the browser's connections."""
        self.session.close()
