"""A job's processes: what one submission may use, and the end of every process it started.

It bounds memory per process (address space) and, where a writable memory cgroup exists (v1 or v2),
all of a job's processes together; processes and threads per job where a writable pids cgroup (v1)
exists; and finds a job's processes by that cgroup or, failing it, by a marker in their environment.
The learner's code itself runs in `grading.sandbox`, inside these limits.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import time
from pathlib import Path
from typing import NamedTuple

from .. import sandbox
from ..settings import Limits

JOB_ENV = "LEAKLAB_JOB"  # marks every process a grading job starts, to find them all at its end


def apply_limits(limits: Limits, cgroup: Path | None, memory: Path | None = None) -> None:
    """In the job's own process, before anything of the submission runs. Each sandbox the job starts
    also holds its own processes and threads to `limits.tasks` (`sandbox.wrap`), whoever grades."""
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory is not None:  # what all the job's processes hold together, counted by the kernel
        (memory / "cgroup.procs").write_text(str(os.getpid()))
    if cgroup is not None:  # the kernel's count of processes and threads, whoever we are
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    elif os.geteuid() != 0 and not sandbox.active():  # counted per user, on top of what the user runs
        running = sum(1 for _ in Path("/proc").glob("[0-9]*/task/[0-9]*"))
        resource.setrlimit(resource.RLIMIT_NPROC, (running + limits.tasks, running + limits.tasks))


def pids_cgroup_root() -> Path | None:
    """A writable cgroup (v1) pids hierarchy, if the machine gives us one."""
    root = Path("/sys/fs/cgroup/pids")
    return root if root.is_dir() and os.access(root, os.W_OK) else None


def make_cgroup(name: str, limits: Limits) -> Path | None:
    base = pids_cgroup_root()
    if base is None:
        return None
    try:
        group = base / name
        group.mkdir()
        (group / "pids.max").write_text(str(limits.tasks))
        return group
    except OSError:
        return None


def refused_tasks(cgroup: Path | None) -> int:
    """How many processes or threads the job's pids cgroup refused at its limit (its `max` events): a
    job that got there hit the process limit, whatever timer fired after (0 without a cgroup)."""
    with contextlib.suppress(OSError, ValueError):
        if cgroup is not None:
            fields = dict(line.split() for line in (cgroup / "pids.events").read_text().splitlines() if line.strip())
            return int(fields.get("max", 0))
    return 0


def memory_cgroup_root() -> Path | None:
    """A writable hierarchy with the memory controller: cgroup v1's, or v2's where it delegates memory."""
    v1, v2 = Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")
    if (v1 / "memory.limit_in_bytes").exists() and os.access(v1, os.W_OK):
        return v1
    with contextlib.suppress(OSError):
        if "memory" in (v2 / "cgroup.subtree_control").read_text().split() and os.access(v2, os.W_OK):
            return v2
    return None


def make_memory_cgroup(name: str, limits: Limits) -> Path | None:
    """A memory cgroup of the job's own, holding all of its processes to `limits.job_memory_bytes`
    (swap included where the machine accounts for it): past it, the kernel's OOM killer ends one of them."""
    base = memory_cgroup_root()
    if base is None:
        return None
    try:
        group = base / name
        group.mkdir()
        v1 = (group / "memory.limit_in_bytes").exists()
        (group / ("memory.limit_in_bytes" if v1 else "memory.max")).write_text(str(limits.job_memory_bytes))
        with contextlib.suppress(OSError):  # no swap accounting: the limit above is the one that holds
            swap = "memory.memsw.limit_in_bytes" if v1 else "memory.swap.max"
            (group / swap).write_text(str(limits.job_memory_bytes) if v1 else "0")
        return group
    except OSError:
        return None


class MemoryEvents(NamedTuple):
    """What the job's memory cgroup saw: processes the OOM killer ended, and whether the job's memory
    reached its limit (the kernel then reclaims, swaps or stalls it: a run held there until its time ran
    out hit the memory limit, not the clock, however loaded the machine)."""

    oom_kills: int = 0
    reached_limit: bool = False


def memory_events(memory: Path | None) -> MemoryEvents:
    """The job's memory events, from its cgroup (none without one). The limit counts as reached when the
    kernel counted a hit (v2 `max` events, v1 `failcnt`) or the peak usage is the limit itself (some
    kernels keep no hit count)."""
    if memory is None:
        return MemoryEvents()
    v2 = (memory / "memory.events").exists()
    events, peak, limit = ("memory.events", "memory.peak", "memory.max") if v2 else _V1_FILES
    with contextlib.suppress(OSError, ValueError):
        fields = dict(line.split() for line in (memory / events).read_text().splitlines() if line.strip())
        hits = int(fields.get("max", 0)) if v2 else int(_read(memory / "memory.failcnt", "0"))
        top, most = int(_read(memory / peak, "0")), _read(memory / limit, "max")
        return MemoryEvents(int(fields.get("oom_kill", 0)), hits > 0 or (most.isdigit() and top >= int(most)))
    return MemoryEvents()


_V1_FILES = ("memory.oom_control", "memory.max_usage_in_bytes", "memory.limit_in_bytes")


def _read(path: Path, default: str) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def remove_group(group: Path | None) -> None:
    """A job's cgroup, once its processes are gone."""
    if group is not None:
        with contextlib.suppress(OSError):
            group.rmdir()


def kill_job(child: int, token: str, cgroup: Path | None) -> None:
    """Kill the job's process and everything it started, however it tried to get away."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child, signal.SIGKILL)
    kill_others(token, cgroup)
    if cgroup is not None:
        with contextlib.suppress(OSError):
            cgroup.rmdir()


def kill_others(token: str, cgroup: Path | None) -> None:
    """Kill every process of the job but the caller, until none is left (or a second has passed)."""
    for _ in range(50):
        victims = job_processes(token, cgroup)
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def job_processes(token: str, cgroup: Path | None) -> list[int]:
    """The job's processes but the caller: by its cgroup, or by the marker in their environment."""
    if cgroup is not None:
        with contextlib.suppress(OSError):
            return [int(p) for p in (cgroup / "cgroup.procs").read_text().split() if int(p) != os.getpid()]
        return []
    marker = f"{JOB_ENV}={token}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
    return [pid for pid in found if pid != os.getpid()]
