"""An isolated run as its parent sees it from outside: the child's messages on a pipe the parent opened,
and what /proc shows of the child's threads, open files and processes at the moments it reports them.

The child runs the learner's code in its own interpreter, so whatever it reports the answer could have
rewritten. The operating system's view cannot be: the parent takes it while the child waits for an
acknowledgement, at three points of a fixed order (`ready` before the answer's code runs, `measuring`
before the burst, `result` after it), and compares. A child that reports no leftover thread or file
while /proc shows one was tampered with. The parent's counts, not the child's, go into the run.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .._census import process_parents

MESSAGE_BYTES = 16 * 2**20  # all the child may say (a result with its leak report is a few KiB)
STAGES = ("ready", "measuring", "result")


class Tampered(Exception):
    """The child's messages, or its counts, are not what an unmodified child sends."""


def find_process(root: int, inner_pid: int) -> int | None:
    """`root` or its descendant whose pid inside its own PID namespace is `inner_pid` (the child is
    bwrap's grandchild in a sandbox, `root` itself outside one)."""
    for pid in [root, *_below(root, process_parents())]:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
            nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if nspid and int(nspid[-1]) == inner_pid:
                return pid
    return None


# The processes a scenario itself starts for a burst (lesson 03's and 08's service): not the answer's.
SERVICES = (("-m", "leaklab.scenarios.hung_call"),)


def _below(root: int, parents: dict[int, int]) -> list[int]:
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found += children
        queue += children
    return found


def started_below(root: int, child: int) -> list[int]:
    """The processes below `root` that still run, but for `child` and the processes between them (a
    zombie has released what it held). In a sandbox, a process the child's own children orphaned is
    adopted by the sandbox's first process, below `root`: it is found too."""
    parents = process_parents()
    between, pid = {root}, child
    while pid not in between and pid in parents:
        between.add(pid)
        pid = parents[pid]
    return [pid for pid in _below(root, parents) if pid not in between and _state(pid) not in ("Z", "X", "")]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace").rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return ""


def _command(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _count(n: int, thing: str, things: str = "") -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {things or thing + 's'}"


@dataclass
class Watch:
    """The parent's side of one run: the stage reached, and what it saw at each stop."""

    root: int  # the process the parent started (bwrap, or the child itself)
    counts: bool = True  # the run counts leftovers (a burst), as opposed to only working out values
    stage: int = 0
    pid: int | None = None  # the child, once it said it is ready
    threads_at_start: set[str] = field(default_factory=set)
    files_at_burst: int = 0

    def _threads(self) -> set[str]:
        return set(os.listdir(f"/proc/{self.pid}/task"))

    def _files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def receive(self, line: bytes) -> dict | None:
        """One message from the child, checked against the order; the run's fields once it has ended."""
        try:
            message = json.loads(line)
            at = message["at"]
        except (ValueError, TypeError, KeyError) as exc:
            raise Tampered("the run's messages to the grader were not the grader's own") from exc
        if at == "result" and isinstance(message.get("run"), dict):
            return self._result(message["run"])
        if self.stage >= 2 or at != STAGES[self.stage]:
            raise Tampered(f"the run's messages to the grader came out of order ({at!r})")
        try:
            if at == "ready":
                self.pid = find_process(self.root, int(message["pid"]))
                if self.pid is None:
                    raise Tampered("the run's process was not where it said it was")
                self.threads_at_start = self._threads()
            else:
                self.files_at_burst = self._files()
        except OSError as exc:  # the child is gone, or hides from its parent
            raise Tampered("the run's process could not be seen from outside") from exc
        except (KeyError, ValueError, TypeError) as exc:
            raise Tampered("the run's messages to the grader were not the grader's own") from exc
        self.stage += 1
        return None

    def _result(self, run: dict) -> dict:
        if run.get("error"):  # a run that failed counts nothing: its own words say why
            return run
        if self.stage < 2:  # only a run that never reached its burst reports this early: an error
            raise Tampered("the run reported a result before it measured anything")
        if not self.counts:  # a run that only works out an answer cell's values: nothing to count
            return run
        try:
            threads = len(self._threads() - self.threads_at_start)
            files = max(0, self._files() - self.files_at_burst)
        except OSError as exc:
            raise Tampered("the run's process could not be seen from outside when it reported") from exc
        # Only a run that says it left nothing behind is held to it: a thread the answer left can still open
        # and close files (or start threads) while the parent looks, and its run fails anyway.
        if not run.get("leftover_threads") and not run.get("leftover_files") and (threads or files):
            seen = " and ".join(_count(n, kind) for n, kind in ((threads, "thread"), (files, "open file")) if n)
            raise Tampered(f"the run reported no leftovers while the operating system saw {seen} left behind")
        with contextlib.suppress(TypeError):
            run["leftover_threads"] = max(threads, run["leftover_threads"])
            run["leftover_files"] = max(files, run["leftover_files"])
        left = self._answers_processes()
        run["leftover_processes"] = len(left)
        if left and isinstance(run.get("leak_report"), str):
            shown = "\n".join(f"  pid {pid}: {' '.join(command)[:200]}" for pid, command in left[:5])
            running = _count(len(left), "process", "processes")
            run["leak_report"] += f"\n{running} still running, started in the run:\n{shown}"
        return run

    def _answers_processes(self) -> list[tuple[int, list[str]]]:
        """The child's descendants still running, but for the scenario's own services (by command line:
        forgeable by a process that rewrites its own, which docs/grading.md lists)."""
        assert self.pid is not None
        left = [(pid, _command(pid)) for pid in started_below(self.root, self.pid)]
        return [(pid, command) for pid, command in left if tuple(command[1:]) not in SERVICES]
