"""The grader's own run of a lesson's tests, outside the learner's kernel.

nbgrader runs the test cells in the kernel that also ran the learner's code, so an answer cell can
rebind what the tests use (`leaklab.run_isolated`, `IsolatedRun.require`, a builtin) and pass them all.
Here the test cells come from the authored source (hidden tests included) and run in the grader's
process, where the learner's code never runs: each name the answer cell defines is bound to its source
(an `AnswerRef`), which only `run_isolated`'s fresh process executes, or, for a plain literal such as
`LEAK_LINE = 42`, to its value. A test passes here and in the kernel, or it does not pass.
"""

from __future__ import annotations

import ast
import contextlib
import io
from dataclasses import dataclass

from ._isolation import AnswerRef


@dataclass
class Verdict:
    """One test cell as the grader's own run saw it."""

    score: float
    max_score: float
    message: str = ""


def _text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _meta(cell: dict) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def answer_names(source: str) -> dict[str, object]:
    """What an answer cell defines at its top level: literals by value, everything else by reference."""
    names: dict[str, object] = {}
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[statement.name] = AnswerRef(source, statement.name)
        elif isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None:
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        names[target.id] = ast.literal_eval(statement.value)
                    except ValueError:
                        names[target.id] = AnswerRef(source, target.id)
    return names


def verify(source: dict, submission: dict) -> dict[str, Verdict]:
    """Run the source's test cells against the submission's answer cells; a verdict per grade id.

    An answer cell that is missing or does not parse fails every test, with the reason.
    """
    answers = {_meta(c)["grade_id"]: _text(c) for c in submission["cells"] if _meta(c).get("solution")}
    namespace: dict[str, object] = {"__name__": "__verify__"}
    problem = ""
    for cell in source["cells"]:
        meta = _meta(cell)
        if cell["cell_type"] != "code" or not meta or meta.get("grade"):
            continue
        if meta.get("solution"):
            answer = answers.get(meta["grade_id"])
            if answer is None:
                problem = f"the answer cell {meta['grade_id']} is missing from the submission"
                continue
            try:
                namespace.update(answer_names(answer))
            except SyntaxError as exc:
                problem = f"the answer cell {meta['grade_id']} is not valid Python: {exc.msg} (line {exc.lineno})"
        elif meta.get("locked"):  # the lesson's own set-up: imports of the scenario's names
            exec(compile(_text(cell), f"<{meta.get('grade_id', 'setup')}>", "exec"), namespace)
    verdicts = {}
    for cell in source["cells"]:
        meta = _meta(cell)
        if cell["cell_type"] != "code" or not meta.get("grade"):
            continue
        points = float(meta.get("points", 0))
        if problem:
            verdicts[meta["grade_id"]] = Verdict(0.0, points, problem)
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(_text(cell), f"<{meta['grade_id']}>", "exec"), namespace)
            verdicts[meta["grade_id"]] = Verdict(points, points)
        except BaseException as exc:  # a test's failure, whatever its kind, is that test's only
            if isinstance(exc, KeyboardInterrupt):
                raise
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            verdicts[meta["grade_id"]] = Verdict(0.0, points, message)
    return verdicts
