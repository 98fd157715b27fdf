"""Every limit the grader applies, defined once: the CLI's defaults, nbgrader's config and the isolated
runs all read them from here.

The lessons compress time (milliseconds stand for the article's seconds), so every cell of a right
answer takes well under a second; the limits are margins for a loaded machine, not targets.
"""

from __future__ import annotations

from dataclasses import dataclass

# One isolated run of an answer (`run_isolated`), as its parent waits for it. Never under
# MIN_RUN_TIMEOUT_S, which is more than the child's own budgets below put together.
RUN_TIMEOUT_S = 25.0
MIN_RUN_TIMEOUT_S = 11.0
# The child's budgets for a loop that never goes quiet (a timer that keeps firing, a thread that never
# ends): the warm-up, then the burst.
WARM_UP_BUDGET_S = 2.0
BURST_BUDGET_S = 8.0
# After the burst, how long the threads it started get to end before what they hold counts as left
# behind; a scenario whose right answers may finish a call after its caller has gone sets its own
# (`SETTLE_S` in the scenario module: lesson 03's longest deadline and a wide margin).
SETTLE_S = 0.5
# What an isolated run may print (or write to any one file); past it the OS stops it (SIGXFSZ).
RUN_OUTPUT_BYTES = 64 * 2**20

# One cell in the kernel: a test cell makes at most two isolated runs.
CELL_TIMEOUT_S = 60.0
# After a cell's timeout and its interrupt, how long the kernel has to answer a request for its info. One
# that does not (an answer that broke the kernel's own threads, or that ignores the interrupt) would not
# answer any later cell either: each of them then gets `SILENT_CELL_S` instead of the full timeout, the
# same failures minutes sooner. A live kernel answers in milliseconds, even on a loaded machine.
SILENT_KERNEL_S = 20.0
SILENT_CELL_S = 1
# One whole submission in the class grader, and what all of it may use.
SUBMISSION_TIMEOUT_S = 300.0
MEMORY_BYTES = 4 * 2**30  # address space per process (a thread's stack counts too)
JOB_MEMORY_BYTES = 6 * 2**30  # memory all of a job's processes hold together, where a memory cgroup counts it
TASKS = 1024  # processes and threads of a job together, where a pids cgroup lets us count them

# How a submission's kernel runs, in nbgrader's autograde (grader/nbgrader_config.py sets these on
# `c.Execute`) and in `leaklab grade`'s own run of the notebook.
KERNEL_RUN: dict[str, object] = {
    "timeout": int(CELL_TIMEOUT_S),
    # An answer that blocks the kernel's event loop leaves the kernel slow to answer after the interrupt:
    # a late output is a failed cell, not a reason to give up on the whole notebook.
    "raise_on_iopub_timeout": False,
    # Submissions may leave threads behind on purpose (that is the lesson): don't wait politely for them.
    "shutdown_kernel": "immediate",
    # Minimal tracebacks: an assertion's message reaches the learner, the hidden test's code does not.
    "extra_arguments": ["--InteractiveShell.xmode=Minimal"],
}


@dataclass(frozen=True)
class Limits:
    """What one submission may use while the class grader grades it."""

    seconds: float = SUBMISSION_TIMEOUT_S  # the whole notebook
    cell_seconds: float = CELL_TIMEOUT_S  # one cell in the kernel
    run_seconds: float = RUN_TIMEOUT_S  # one isolated run of the answer
    memory_bytes: int = MEMORY_BYTES
    job_memory_bytes: int = JOB_MEMORY_BYTES
    tasks: int = TASKS


# A sandbox's private /tmp (grading/sandbox.py): a lesson writes a few small files there.
SANDBOX_TMP_BYTES = 256 * 2**20

# What a graded notebook keeps of the kernel's outputs (kernel.capped): a lesson prints a few lines per
# cell and draws plots of about 100 KB; past these, outputs are cut with a note saying so.
CELL_TEXT_BYTES = 64 * 2**10  # the printed text of one cell
OUTPUT_ITEM_BYTES = 2 * 2**20  # one image or other rich output
NOTEBOOK_OUTPUT_BYTES = 16 * 2**20  # all outputs of the notebook together
# Figures the grader draws from a kernel's data (kernel.drawn) for one notebook; a lesson shows at most 3.
DRAWN_FIGURES = 24
