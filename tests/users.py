"""A throwaway unprivileged user for tests that must show what holds when the grader is not root.

Folders on the way to what the user must reach (the venv's Python under /root, say) get o+x for the
test and their mode back afterwards; the user, and every process it still has, go at the end. Two such
users never live at once, even in two test runs side by side: one run's putting /root's mode back would
lock the other's user out mid-test.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

# Held while a temporary user lives, by every test run on the machine.
LOCK = Path(tempfile.gettempdir()) / "leaklab-temporary-user.lock"


@contextlib.contextmanager
def temporary_user(prefix: str, reachable: Iterable[Path]) -> Iterator[str]:
    """A new user named `prefix` + a number, able to enter every folder above `reachable` (and the
    runtime's); skips the test without root, useradd or runuser."""
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("needs root (to make the user) and useradd/runuser")
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        yield from _user(prefix, reachable)


def _user(prefix: str, reachable: Iterable[Path]) -> Iterator[str]:
    user = f"{prefix}{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", user], check=True, capture_output=True)
    opened: dict[Path, int] = {}
    try:
        for path in (Path(sys.executable), Path(sys.base_prefix) / "lib", *reachable):
            for folder in reversed(path.resolve().parents):
                if not folder.stat().st_mode & stat.S_IXOTH and folder not in opened:
                    opened[folder] = stat.S_IMODE(folder.stat().st_mode)
                    folder.chmod(opened[folder] | stat.S_IXOTH)
        yield user
    finally:
        for folder, mode in opened.items():
            folder.chmod(mode)
        subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
        _give_back(user)
        subprocess.run(["userdel", user], capture_output=True)


@contextlib.contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A folder for what a temporary user works on, removed afterwards. Not under pytest's own temporary
    folder: every pytest session root starts closes that one to other users again (mode 0700), so a test
    run started beside this one would lock the user out of its files."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _give_back(user: str) -> None:
    """What the user left in the machine's scratch folders, handed to root: a user made later gets the
    same uid, and must not find these files its own."""
    import pwd

    uid = pwd.getpwnam(user).pw_uid
    for top in ("/tmp", "/var/tmp", "/dev/shm"):
        for folder, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    if os.lstat(path).st_uid == uid:
                        os.lchown(path, 0, 0)


def as_user(user: str, home: Path, *command: str) -> list[str]:
    """`command` as `user`, in a clean environment with `home` as its home."""
    return ["runuser", "-u", user, "--", "env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", *command]


def processes_of(user: str, *, within_s: float = 30) -> list[int]:
    """The processes `user` still runs once those that are ending have ended (a sandbox's processes end
    just after its parent: the kernel tears them down on its own time), waiting at most `within_s`."""
    import pwd

    uid = pwd.getpwnam(user).pw_uid
    deadline = time.monotonic() + within_s
    while True:
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if proc.stat().st_uid == uid:
                    found.append(int(proc.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
