"""Hostile and broken submissions for the class grader (`leaklab autograde`), as data, with the score and
reason each must get; correct and plainly wrong controls are mixed in, so that every other submission is
seen to keep its right score. tests/notebooks/test_class_grading.py grades the whole corpus at once.

Each case names its assignment, how its notebook is built (from solutions/ or exercises/: an answer cell
replaced, cells or metadata changed, or raw bytes), its expected total score, the expected `reason`
column of grades.csv ("" for a submission graded normally), and why.

Safe on a shared 2-core CI machine that runs as root: every bomb is bounded on its own (a few thousand
sleeping threads or children, ~2 GB of output, an allocation far past the address-space limit), so a
grader that failed to contain it would still not take the machine down.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import answers
import answers_04

ROOT = Path(__file__).resolve().parents[1]
POOL = "04_lifeless_pool"
CANCEL = "01_forgotten_cancel"
HUNG = "03_hung_call"


def _notebook(kind: str, slug: str) -> dict:
    return json.loads((ROOT / kind / f"{slug}.ipynb").read_text(encoding="utf-8"))


def _meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if _meta(c).get("grade_id") == grade_id)


def solution_answer(slug: str) -> str:
    """The authored answer cell of a lesson, as the worked solution has it."""
    return "".join(_cell(_notebook("solutions", slug), f"{slug}_fix")["source"])


@dataclass(frozen=True)
class Case:
    """One submission of the corpus."""

    assignment: str
    build: Callable[[str], bytes]  # the assignment -> the submitted file's bytes
    score: float
    reason: str
    why: str


def copy_of(kind: str, slug: str | None = None) -> Callable[[str], bytes]:
    """solutions/ or exercises/ as they are (of `slug`, or of the case's own assignment)."""
    return lambda assignment: (ROOT / kind / f"{slug or assignment}.ipynb").read_bytes()


def answer(source: str) -> Callable[[str], bytes]:
    """The worked solution with its answer cell replaced, as a learner would submit it."""

    def build(assignment: str) -> bytes:
        nb = _notebook("solutions", assignment)
        _cell(nb, f"{assignment}_fix")["source"] = source
        return json.dumps(nb).encode()

    return build


def mutate(change: Callable[[dict, str], None]) -> Callable[[str], bytes]:
    """The worked solution, changed in place by `change(notebook, assignment)`."""

    def build(assignment: str) -> bytes:
        nb = copy.deepcopy(_notebook("solutions", assignment))
        change(nb, assignment)
        return json.dumps(nb).encode()

    return build


def raw(data: bytes) -> Callable[[str], bytes]:
    """Bytes that are not a notebook at all."""
    return lambda assignment: data


def _edit_test(nb: dict, slug: str) -> None:
    _cell(nb, f"{slug}_no_worker_survives")["source"] = '"""(d) No worker survives its pool."""\npass\n'


def _delete_test(nb: dict, slug: str) -> None:
    nb["cells"].remove(_cell(nb, f"{slug}_stop_waits_for_workers"))


def _retype_test(nb: dict, slug: str) -> None:
    cell = _cell(nb, f"{slug}_failure_keeps_worker")
    cell["cell_type"] = "markdown"
    for key in ("outputs", "execution_count"):
        cell.pop(key, None)


def _reorder_tests(nb: dict, slug: str) -> None:
    last = _cell(nb, f"{slug}_no_worker_survives")
    nb["cells"].remove(last)
    nb["cells"].insert(nb["cells"].index(_cell(nb, f"{slug}_stop_waits_for_workers")), last)


def _change_points(nb: dict, slug: str) -> None:
    _meta(_cell(nb, f"{slug}_every_job_accounted_for"))["points"] = 20


FIXED = answers_04.FIXED
PASSING = {  # every property of lesson 04 passed: what a forged result claims
    "stop_waits_for_workers": [1, 1],
    "every_job_accounted_for": [1, 1],
    "failure_keeps_worker": [1, 1],
    "no_worker_survives": [1, 1],
    "problems": [],
}

# Busy for ever, at the top of the answer cell: the kernel's cell times out, the grader's runs too.
LOOP_AT_TOP = "while True:\n    pass\n" + FIXED

# Busy for ever where the tests call it: stop() never returns.
LOOP_IN_STOP = FIXED.replace(
    "        for _ in self._threads:\n            self.jobs.put(None)\n"
    "        for thread in self._threads:\n            thread.join()\n",
    "        while True:\n            pass\n",
)
assert LOOP_IN_STOP != FIXED

# Busy for ever and deaf to the kernel's interrupt: only killing the process ends it.
SIGINT_IGNORED = "import signal\n\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n" + FIXED

# Ends the process that runs it: the kernel, or the grader's fresh interpreter.
OS_EXIT_AT_TOP = FIXED + "\nimport os\n\nos._exit(0)\n"
SYS_EXIT_AT_TOP = FIXED + "\nimport sys\n\nsys.exit()\n"
KEYBOARD_INTERRUPT_AT_TOP = FIXED + "\nraise KeyboardInterrupt\n"

# Thousands of sleeping threads (small stacks, so that the task limit, not memory, stops them).
THREAD_BOMB = (
    "import time\n\nthreading.stack_size(64 * 1024)\nfor _ in range(5000):\n"
    "    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n" + FIXED
)

# Thousands of sleeping children: bounded on purpose (never `while True: os.fork()`).
FORK_BOMB = (
    "import os\nimport time\n\nfor _ in range(3000):\n    if os.fork() == 0:\n"
    "        time.sleep(3600)\n        os._exit(0)\n" + FIXED
)

# A right pool that leaves sleeping children behind, each in a session of its own (out of reach of a
# kill of its process group): the grader must still end every one of them.
ESCAPING_CHILDREN = (
    "import os\nimport time\n\nfor _ in range(20):\n    if os.fork() == 0:\n        os.setsid()\n"
    "        time.sleep(3600)\n        os._exit(0)\n" + FIXED
)

# Four children holding 1 GiB each, every one of them under the per-process limit: 4 GiB in all, past
# the per-submission limit, so the kernel's OOM killer ends some of them (the pool itself is right). The
# answer goes on only once each child holds its memory or is gone (a pipe each closes), whatever the load,
# and then ends and reaps its children: no process of it is left for the leftover count.
MEMORY_ACROSS_PROCESSES = (
    """import os
import signal
import time

held, told = os.pipe()
children = []
for _ in range(4):
    children.append(os.fork())
    if children[-1] == 0:
        os.close(held)
        try:
            hoard = bytearray(2**30)
        except MemoryError:  # over the per-process limit: gone, which closes its end too
            os._exit(0)
        os.close(told)
        time.sleep(3600)
        os._exit(0)
os.close(told)
while os.read(held, 1):
    pass
os.close(held)
for child in children:
    try:
        os.kill(child, signal.SIGKILL)
    except OSError:
        pass
    os.waitpid(child, 0)
"""
    + FIXED
)

# Every process it can see, stopped and then killed: its parent, pid 1, the grader if it were visible.
KILL_THE_GRADER = (
    """import os
import signal

for pid in [os.getppid(), *(int(p) for p in os.listdir("/proc") if p.isdigit())]:
    for sent in (signal.SIGSTOP, signal.SIGKILL):
        if pid != os.getpid():
            try:
                os.kill(pid, sent)
            except OSError:
                pass
"""
    + FIXED
)

# A daemon of its own session that outlives the answer, looking for the course (a gradebook, a grades
# table, other submissions) to rewrite once grading is over: it finds none, and dies with its sandbox.
COURSE_REWRITE = (
    """import os
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            places = ["/", "/tmp", os.getcwd(), os.path.expanduser("~")]
            places += [f"/proc/{p}/{w}" for p in os.listdir("/proc") if p.isdigit() for w in ("cwd", "root")]
            for place in places:
                try:
                    names = os.listdir(place)
                except OSError:
                    continue
                for name in names:
                    if name in ("gradebook.db", "leaklab", "submitted", "autograded") or name.endswith(".ipynb"):
                        try:
                            with open(os.path.join(place, name), "a") as target:
                                target.write("rewritten")
                        except OSError:
                            pass
            time.sleep(0.5)
    os._exit(0)
"""
    + FIXED
)

# Its kernel's working folder and /tmp written full, 16 MiB a file, until the disk says no.
DISK_FILL = (
    """import os
import sys

if "ipykernel" in sys.modules:  # the kernel: its isolated runs are left their memory
    for folder in (os.getcwd(), "/tmp"):
        try:
            for n in range(10**6):
                with open(os.path.join(folder, f"fill-{n}"), "wb") as fill:
                    fill.write(bytes(2**24))
        except OSError:
            pass
"""
    + FIXED
)

# 25 GiB asked for, 128 MiB at a time: far past any address-space limit the grader sets.
MEMORY_BOMB = "hoard = [bytearray(2**27) for _ in range(200)]\n" + FIXED

# About 2 GB printed, 1 MiB a line.
OUTPUT_BOMB = 'for _ in range(2048):\n    print("x" * 2**20)\n' + FIXED

# Blinds the counters a kernel offers, around a pool that never stops its workers.
PATCHED_THREADING = (
    "threading.active_count = lambda: 1\n"
    "threading.enumerate = lambda: [threading.main_thread()]\n"
    "asyncio.all_tasks = lambda loop=None: set()\n" + answers_04.NEVER_STOPS
)

# Shadows builtins in the cell, around a pool that does not join its workers: nothing that measures
# looks up names in the answer's namespace.
SHADOWED_BUILTINS = (
    "len = lambda items: 0\nsum = lambda items, start=0: 0\nisinstance = lambda obj, kind: True\n"
    "print = lambda *args, **kwargs: None\n" + answers_04.NO_JOIN
)

# Replaces a builtin for the whole interpreter: the grader's fresh one puts it back before measuring;
# the kernel (whose own machinery uses it) stops answering, and its timeouts take every point away.
PATCHED_BUILTINS = "import builtins\n\nbuiltins.isinstance = lambda obj, kind: True\n" + answers_04.NO_JOIN

# Rebinds leaklab's own checks, so that the kernel's test cells pass whatever the pool does.
PATCHED_LEAKLAB = (
    "import leaklab\n\nleaklab.IsolatedRun.require = lambda self, *names: None\n"
    "leaklab.IsolatedRun.require_no_leftovers = lambda self: None\n" + answers_04.NO_JOIN
)

# Rebinds the checks the grader's fresh interpreter runs, so that every check it records passes.
PATCHED_CHECKS = (
    "from leaklab.scenarios import _checks\n\n"
    "_checks.Checks.record = lambda self, name, problem: self.counts.__setitem__(name, [1, 1])\n" + answers_04.NO_JOIN
)

# Rebinds the entry point the test cells call, returning a result that passes everything.
PATCHED_RUN_ISOLATED = (
    "import leaklab\n\n"
    "leaklab.run_isolated = lambda *args, **kwargs: leaklab.IsolatedRun(\n"
    "    outcome={'completed_with_result': [1, 1], 'query_ran_once': [1, 1], 'gave_up_as_specified': [1, 1],\n"
    "             'gave_up_promptly': [1, 1], 'problems': []}\n"
    ")\n" + answers.LEAKY
)

# A hard-coded result: all-passing verdicts written over the kernel's file of measured runs (read-only
# there, and not yet written when answer cells run), and, in the grader's fresh interpreter, an
# all-passing result sent over the run's own channel before anything is measured.
HARD_CODED_RESULT = (
    f"""
import contextlib
import gc
import json
import os
import sys

PASSING = {PASSING!r}
path = os.environ.get("LEAKLAB_VERDICTS", "")
with contextlib.suppress(OSError):
    known = json.load(open(path))
    for run in known.get("runs", {{}}).values():
        run.update(outcome=PASSING, error=None, leftover_tasks=0, leftover_threads=0)
    json.dump(known, open(path, "w"))
if "leaklab.grading.child" in sys.modules:  # in the grader's fresh interpreter
    from leaklab.grading.child import Channel

    channel = next(o for o in gc.get_objects() if isinstance(o, Channel))
    result = {{"outcome": PASSING, "leftover_tasks": 0, "leftover_threads": 0, "leftover_files": 0}}
    channel.stop_at("result", run=result)
"""
    + answers_04.NO_JOIN
)
# The same result sent later, from a thread the answer leaves running while the burst goes on.
FORGED_FROM_A_THREAD = (
    f"""
import gc
import sys
import threading
import time

PASSING = {PASSING!r}


def forge():
    from leaklab.grading.child import Channel

    time.sleep(0.3)
    channel = next(o for o in gc.get_objects() if isinstance(o, Channel))
    result = {{"outcome": PASSING, "leftover_tasks": 0, "leftover_threads": 0, "leftover_files": 0}}
    channel.stop_at("result", run=result)


if "leaklab.grading.child" in sys.modules:
    threading.Thread(target=forge, daemon=True).start()
"""
    + answers_04.NO_JOIN
)

# Lesson 01's handler, ending its process or the run from inside a request.
_HANDLER = "async def handle_request(request: Request) -> Result:\n"
RAISE_SYSTEM_EXIT = _HANDLER + "    raise SystemExit\n"
RAISE_KEYBOARD_INTERRUPT = _HANDLER + "    raise KeyboardInterrupt\n"
OS_EXIT_IN_HANDLER = "import os\n\n\n" + _HANDLER + "    os._exit(0)\n"
# Blocks the event loop for ever (`time.sleep`, not `asyncio.sleep`) in every request.
SLEEP_IN_HANDLER = "import time\n\n\n" + _HANDLER + "    time.sleep(10**9)\n"

# Lesson 03's right answer, then leaving: a run that ended early cannot show that nothing was left open.
SYS_EXIT_03 = solution_answer(HUNG) + "\nimport sys\n\nsys.exit()\n"

# Looks for what a grading job must never see: the checkout's lessons (hidden tests) and solutions,
# beside the installed package; the class's course, from the grader's command line in /proc; and prints
# what it found (the test reads it back from the autograded notebook, where the kernel's output lands).
SNOOPING = (
    """import os
from pathlib import Path

import leaklab

found = []
checkout = Path(leaklab.__file__).resolve().parents[2]
for folder in ("notebooks", "solutions", "tests"):
    if (checkout / folder).exists():
        found.append(f"{folder}: {sorted(os.listdir(checkout / folder))[:3]}")
for proc in Path("/proc").glob("[0-9]*"):
    try:
        words = (proc / "cmdline").read_bytes().split(b"\\0")
    except OSError:
        continue
    if b"autograde" in words:
        found.append(f"grader {proc.name}: {words[-1].decode()}")
print("SNOOPED:", found or "nothing")
"""
    + FIXED
)

# Sends out and listens: `NETWORK_PORT` is a listener the test opens on the host's loopback.
NETWORK_PORT = 47311
NETWORK = (
    f"""import socket

try:
    socket.create_connection(("127.0.0.1", {NETWORK_PORT}), timeout=2).sendall(b"the hidden tests")
    print("NETWORK: sent")
except OSError as exc:
    print("NETWORK:", type(exc).__name__)
"""
    + FIXED
)

# Fills the kernel's outputs (20 MB printed in one line, a 10 MB "image"), well under the isolated run's
# output limit: graded normally, with its outputs cut in the notebook and feedback page the course keeps.
KERNEL_OUTPUT_BOMB = (
    """from IPython.display import Image, display

print("x" * 20 * 2**20)
display(Image(data=b"\\x89PNG\\r\\n\\x1a\\n" + bytes(10 * 2**20), format="png"))
"""
    + FIXED
)

# Prints the source of every cell the kernel runs after it, the test cells included: they reach the
# autograded notebook and the feedback page, but only as the kernel has them, without hidden tests.
CELL_SPY = (
    """try:
    get_ipython().events.register("pre_run_cell", lambda info: print("SPY:", info.raw_cell))
except NameError:  # not in a kernel: the grader's isolated run
    pass
"""
    + FIXED
)

NOT_A_NOTEBOOK = b'{"cells": [{"cell_type": "code", "source": "print(1)"'

TIMEOUT, ANSWER, LIMIT, MEMORY = "timeout", "answer failed", "process limit", "memory limit"
TAMPERED, DIED = "tampered", "kernel died"

CORPUS: dict[str, Case] = {
    # controls: graded normally, among the others
    "solution-04": Case(POOL, copy_of("solutions"), 9, "", "the worked solution"),
    "exercise-04": Case(POOL, copy_of("exercises"), 0, "", "the exercise as released, untouched"),
    "executor-04": Case(POOL, answer(answers_04.EXECUTOR), 9, "", "another right answer (an executor)"),
    "no-join-04": Case(POOL, answer(answers_04.NO_JOIN), 2, "", "a plain wrong answer: loses (a), (b) and (d)"),
    "solution-01": Case(CANCEL, copy_of("solutions"), 9, "", "the worked solution"),
    "exercise-01": Case(CANCEL, copy_of("exercises"), 0, "", "the exercise as released, untouched"),
    "task-group-01": Case(CANCEL, answer(answers.TASK_GROUP), 9, "", "another right answer (a TaskGroup)"),
    "solution-03": Case(HUNG, copy_of("solutions"), 9, "", "the worked solution"),
    "exercise-03": Case(HUNG, copy_of("exercises"), 0, "", "the exercise as released, untouched"),
    # time
    "loop-at-top": Case(POOL, answer(LOOP_AT_TOP), 0, TIMEOUT, "infinite loop before the class is defined"),
    "loop-in-stop": Case(POOL, answer(LOOP_IN_STOP), 0, TIMEOUT, "infinite loop where every test calls it"),
    "sigint-ignored": Case(POOL, answer(SIGINT_IGNORED), 0, TIMEOUT, "a loop the kernel cannot interrupt"),
    "sleep-forever-01": Case(CANCEL, answer(SLEEP_IN_HANDLER), 0, TIMEOUT, "time.sleep(10**9) in each request"),
    # leaving
    "os-exit-at-top": Case(POOL, answer(OS_EXIT_AT_TOP), 0, DIED, "os._exit(0) kills the kernel"),
    "sys-exit-at-top": Case(POOL, answer(SYS_EXIT_AT_TOP), 0, ANSWER, "sys.exit() after a right pool"),
    "interrupt-at-top": Case(POOL, answer(KEYBOARD_INTERRUPT_AT_TOP), 0, ANSWER, "raise KeyboardInterrupt"),
    "system-exit-01": Case(CANCEL, answer(RAISE_SYSTEM_EXIT), 0, DIED, "raise SystemExit in a request"),
    "interrupt-01": Case(CANCEL, answer(RAISE_KEYBOARD_INTERRUPT), 0, DIED, "KeyboardInterrupt in a request"),
    "os-exit-01": Case(CANCEL, answer(OS_EXIT_IN_HANDLER), 0, DIED, "os._exit(0) in a request"),
    "sys-exit-03": Case(HUNG, answer(SYS_EXIT_03), 0, ANSWER, "a run that ended early shows no leftovers"),
    # resources
    "thread-bomb": Case(POOL, answer(THREAD_BOMB), 0, LIMIT, "5000 sleeping threads"),
    "fork-bomb": Case(POOL, answer(FORK_BOMB), 0, LIMIT, "3000 sleeping children"),
    "escaping-children": Case(POOL, answer(ESCAPING_CHILDREN), 7, "", "20 children in sessions of their own: left"),
    # the sandbox: nothing to read, nowhere to send
    "snooping": Case(POOL, answer(SNOOPING), 9, "", "looks for the lessons, solutions and course: finds none"),
    "course-rewrite": Case(POOL, answer(COURSE_REWRITE), 7, "", "a daemon hunting the gradebook: finds none, left"),
    "kill-the-grader": Case(POOL, answer(KILL_THE_GRADER), 9, "", "SIGSTOP, SIGKILL to all it sees: its own only"),
    "disk-fill": Case(POOL, answer(DISK_FILL), 9, "", "writes its folder and /tmp full: 256 MiB each, in memory"),
    "network": Case(POOL, answer(NETWORK), 9, "", "connects to a listener of the host's: cannot"),
    "kernel-output-bomb": Case(POOL, answer(KERNEL_OUTPUT_BOMB), 9, "", "30 MB of outputs, cut to size"),
    "cell-spy": Case(POOL, answer(CELL_SPY), 9, "", "prints every cell the kernel runs: no hidden test among them"),
    "memory-bomb": Case(POOL, answer(MEMORY_BOMB), 0, MEMORY, "25 GiB asked for"),
    "memory-across-processes": Case(POOL, answer(MEMORY_ACROSS_PROCESSES), 9, MEMORY, "4 x 1 GiB in children"),
    "output-bomb": Case(POOL, answer(OUTPUT_BOMB), 0, "output limit", "2 GB printed"),
    # rebinding what measures
    "patched-threading": Case(POOL, answer(PATCHED_THREADING), 2, "", "blinded counters do not hide the leak"),
    "patched-counters-01": Case(CANCEL, answer(answers.PATCHED_COUNTERS), 4, "", "blinded counters, lesson 01"),
    "shadowed-builtins": Case(POOL, answer(SHADOWED_BUILTINS), 2, "", "shadowed builtins change nothing"),
    "patched-builtins": Case(POOL, answer(PATCHED_BUILTINS), 0, TIMEOUT, "builtins.isinstance replaced"),
    # a method of leaklab's replaced: put back before measuring, and the run that saw it scores nothing
    "patched-leaklab": Case(POOL, answer(PATCHED_LEAKLAB), 0, TAMPERED, "IsolatedRun.require replaced"),
    "patched-checks": Case(POOL, answer(PATCHED_CHECKS), 0, TAMPERED, "Checks.record replaced"),
    "patched-run-01": Case(CANCEL, answer(PATCHED_RUN_ISOLATED), 4, TAMPERED, "leaklab.run_isolated rebound"),
    # The grader's measurements reach the kernel only at its first test cell, read-only; a result sent on
    # the run's channel out of turn, or while a thread the run did not report is alive, is tampering.
    "hard-coded-result": Case(POOL, answer(HARD_CODED_RESULT), 0, TAMPERED, "forged verdicts and result"),
    "forged-from-a-thread": Case(POOL, answer(FORGED_FROM_A_THREAD), 0, TAMPERED, "a result sent from a thread"),
    # the notebook itself
    "edited-test": Case(POOL, mutate(_edit_test), 7, TAMPERED, "test (d) replaced by `pass`"),
    "deleted-test": Case(POOL, mutate(_delete_test), 6, TAMPERED, "test (a) deleted"),
    "retyped-test": Case(POOL, mutate(_retype_test), 7, TAMPERED, "test (c) turned into markdown"),
    "reordered-tests": Case(POOL, mutate(_reorder_tests), 7, TAMPERED, "test (d) moved first"),
    "points-changed": Case(POOL, mutate(_change_points), 7, TAMPERED, "test (b) worth 20 points"),
    "wrong-assignment": Case(POOL, copy_of("solutions", CANCEL), 0, "wrong assignment", "lesson 01 handed in"),
    "invalid-json": Case(POOL, raw(NOT_A_NOTEBOOK), 0, "unreadable", "JSON cut short"),
    "empty-file": Case(CANCEL, raw(b""), 0, "unreadable", "an empty file"),
}
