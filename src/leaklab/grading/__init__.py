"""The grading core: both `leaklab grade` (`single`) and `leaklab autograde` (`classroom`) stand on it.

The parts, each importing only those listed before it (docs/grading.md has the full map):
- settings: every limit, defined once.
- cells: what a notebook cell is to the grader (answer, test, locked set-up).
- results: `TestResult`, the `Reason` enum, and the two pure decisions: merging two runs, naming a reason.
- handoff: the grader-to-kernel hand-off of measurements (a versioned file named by an environment variable).
- isolation, child: `run_isolated`, an answer's run in a fresh interpreter, and that interpreter's side.
- own_run: the grader's own run of the tests, outside the learner's kernel.
- checks: is it a notebook, of which lesson, with its answer and test cells as released?
- kernel, nbgrader_course: the kernel's run, by nbclient or by nbgrader's autograde.
- core: one submission graded from both runs.
- single, classroom: the two front ends.

Importing this package loads nothing heavy (no memray, matplotlib or nbgrader): nbgrader's config reads
`settings`, and every kernel that grades imports `isolation` through `leaklab.run_isolated`.
"""

from __future__ import annotations

from .results import Reason, TestResult

__all__ = ["Reason", "TestResult"]
