"""JupyterHub for a leaklab workshop on one machine: `jupyterhub -f grader/hub/jupyterhub_config.py`, as root.

Everyone logs in with their Unix account (PAM) and gets a JupyterLab of their own, run as them
(LocalProcessSpawner) from this checkout's environment (.venv), with nbgrader's Assignments tab talking
to one shared exchange folder. The instructor also gets the formgrader, on the course directory
`~/leaklab-course` that `leaklab course` creates. Everything listens on 127.0.0.1 only: put a TLS
reverse proxy in front of it (or an SSH tunnel) before students on other machines can reach it.

Adjusted only through these environment variables (defaults in brackets):

  LEAKLAB_HUB_INSTRUCTOR      the instructor's Unix user name [instructor]; a hub admin
  LEAKLAB_HUB_STUDENTS        the students' Unix user names, separated by commas or spaces []
  LEAKLAB_HUB_ROSTER          and/or a CSV with an `id` column, the roster `leaklab course --roster` reads []
  LEAKLAB_EXCHANGE            nbgrader's exchange folder, shared by all [/srv/nbgrader/exchange]; created
                              (owned by the instructor, mode 777) when missing
  LEAKLAB_VENV                the environment the servers and kernels run in [<checkout>/.venv]
  LEAKLAB_HUB_PORT            the public port, on 127.0.0.1 [8000]
  LEAKLAB_HUB_API_PORT        the proxy's REST API, on 127.0.0.1 [8001]
  LEAKLAB_HUB_INTERNAL_PORT   the hub itself, behind the proxy, on 127.0.0.1 [8081]
  LEAKLAB_HUB_STATE           the hub's database, cookie secret and pid files [<checkout>/.leaklab/hub/state]
  LEAKLAB_HUB_PROXY           configurable-http-proxy [<checkout>/.leaklab/hub/node_modules/.bin/..., as
                              grader/hub/install-proxy.sh installs it; else the one on PATH]
"""

from __future__ import annotations

import csv
import logging
import os
import pwd
import re
import shutil
import stat
from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when JupyterHub loads this file

REPO = Path(__file__).resolve().parents[2]
HUB_DIR = REPO / "grader" / "hub"
COURSE_FOLDER = "leaklab-course"  # under the instructor's home: the formgrader wants it below the server's root
log = logging.getLogger("JupyterHub")


def _setting(name: str, default: str) -> str:
    """An environment variable, or the default when it is unset or empty."""
    return os.environ.get(name) or default


def _port(name: str, default: int) -> int:
    """A port number from the environment, with a message that names the variable when it is not one."""
    text = _setting(name, str(default))
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SystemExit(f"{name}={text!r} is not a port number (1-65535)")
    return int(text)


def _students() -> list[str]:
    """The names in LEAKLAB_HUB_STUDENTS and in the roster CSV of LEAKLAB_HUB_ROSTER, in order, once each."""
    names = re.split(r"[\s,]+", _setting("LEAKLAB_HUB_STUDENTS", "").strip())
    roster = _setting("LEAKLAB_HUB_ROSTER", "")
    if roster:
        try:
            with open(roster, newline="", encoding="utf-8") as rows:
                names += [row["id"].strip() for row in csv.DictReader(rows)]
        except (OSError, KeyError) as exc:
            raise SystemExit(f"LEAKLAB_HUB_ROSTER={roster}: cannot read an `id` column from it ({exc})") from None
    return list(dict.fromkeys(name for name in names if name))


def _not_traversable(path: Path) -> Path | None:
    """The first folder on the way to `path` (symlinks followed) that other users cannot enter, if any."""
    target = path.resolve()
    for folder in (*reversed(target.parents), target):
        mode = folder.stat().st_mode
        if folder != target and not mode & stat.S_IXOTH:
            return folder
    return None if target.stat().st_mode & stat.S_IXOTH else target


def _home(user: str) -> str:
    """A local user's home folder ("" for a name the system does not know)."""
    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        return ""


INSTRUCTOR = _setting("LEAKLAB_HUB_INSTRUCTOR", "instructor")
STUDENTS = [name for name in _students() if name != INSTRUCTOR]
EXCHANGE = Path(_setting("LEAKLAB_EXCHANGE", "/srv/nbgrader/exchange")).absolute()
VENV = Path(_setting("LEAKLAB_VENV", str(REPO / ".venv"))).absolute()
STATE = Path(_setting("LEAKLAB_HUB_STATE", str(REPO / ".leaklab" / "hub" / "state"))).absolute()
PROXY = _setting(
    "LEAKLAB_HUB_PROXY", str(REPO / ".leaklab" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy")
)
PORT = _port("LEAKLAB_HUB_PORT", 8000)
API_PORT = _port("LEAKLAB_HUB_API_PORT", 8001)
INTERNAL_PORT = _port("LEAKLAB_HUB_INTERNAL_PORT", 8081)

# --- where the hub listens, and what it keeps (the database and cookie secret survive a restart) ---------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{INTERNAL_PORT}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{API_PORT}"
if not os.access(PROXY, os.X_OK):
    PROXY = shutil.which("configurable-http-proxy") or PROXY
c.ConfigurableHTTPProxy.command = [PROXY]
STATE.mkdir(parents=True, exist_ok=True)
STATE.chmod(0o700)  # the cookie secret and the users' tokens live here
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")

# --- who may log in: Unix accounts, checked by PAM; the instructor administers the hub --------------------------
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = {INSTRUCTOR, *STUDENTS}
c.Authenticator.admin_users = {INSTRUCTOR}

# --- each user's server: JupyterLab from the course environment, run as that user, in their home ---------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(VENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120  # seconds; a 2-core machine starting a class's servers at once is slow
c.Spawner.http_timeout = 120


def _is_instructor(spawner) -> bool:
    """Whether this server is the instructor's (the hub calls the environment's callables at each spawn)."""
    return spawner.user.name == INSTRUCTOR


c.Spawner.environment = {
    "PATH": f"{VENV / 'bin'}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
    "VIRTUAL_ENV": str(VENV),
    # The course's Jupyter config (each user's ~/.jupyter still comes first): for students, the instructor's
    # tools switched off (grader/hub/students); for everyone, nbgrader's course id and exchange and the
    # terminal's shell (grader/hub/jupyter), and the grading settings and lab defaults of the checkout's
    # own lab (grader/jupyter), which the Validate button uses.
    "JUPYTER_CONFIG_PATH": lambda spawner: os.pathsep.join(
        [
            *([] if _is_instructor(spawner) else [str(HUB_DIR / "students")]),
            str(HUB_DIR / "jupyter"),
            str(REPO / "grader" / "jupyter"),
        ]
    ),
    "JUPYTER_PLATFORM_DIRS": "1",
    "LEAKLAB_EXCHANGE": str(EXCHANGE),
    # The instructor's server opens this course directory in the formgrader (grader/hub/jupyter/nbgrader_config.py).
    "LEAKLAB_COURSE": lambda spawner: (
        str(Path(_home(spawner.user.name)) / COURSE_FOLDER) if _is_instructor(spawner) else ""
    ),
}

# --- checks that turn a confusing failure at the first login into a message at start ---------------------------
if os.geteuid() != 0:
    log.warning("leaklab hub: not running as root, so it cannot start servers as the students' own users")
for user in (INSTRUCTOR, *STUDENTS):
    if not _home(user):
        log.warning("leaklab hub: %s is allowed to log in but is not a user of this machine (useradd)", user)
if not STUDENTS:
    log.warning("leaklab hub: no students (set LEAKLAB_HUB_STUDENTS or LEAKLAB_HUB_ROSTER)")
for needed in (VENV / "bin" / "jupyterhub-singleuser", VENV / "bin" / "python", HUB_DIR / "jupyter"):
    if not needed.exists():
        log.warning("leaklab hub: %s is missing: run `make` in the checkout (or set LEAKLAB_VENV)", needed)
    elif (blocked := _not_traversable(needed)) is not None:
        log.warning(
            "leaklab hub: the users cannot reach %s (%s is closed to other users), so their servers cannot start: "
            "put the checkout and its Python where everyone may read them (/opt, say), or chmod o+x %s",
            needed,
            blocked,
            blocked,
        )
if not EXCHANGE.exists():
    # nbgrader's exchange: everyone writes into it, the folders above it let everyone through (whatever the
    # hub's umask), and the instructor owns it, so that `leaklab course --exchange` (which sets its mode)
    # works when run as the instructor.
    for folder in (*reversed(EXCHANGE.parents), EXCHANGE):
        if not folder.exists():
            folder.mkdir()
            folder.chmod(0o755)
    EXCHANGE.chmod(0o777)
    if _home(INSTRUCTOR):
        account = pwd.getpwnam(INSTRUCTOR)
        os.chown(EXCHANGE, account.pw_uid, account.pw_gid)
