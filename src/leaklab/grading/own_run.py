"""The grader's own run of a lesson's tests, outside the learner's kernel.

nbgrader runs the test cells in the kernel that also ran the learner's code, so an answer cell can
rebind what the tests use (`leaklab.run_isolated`, `IsolatedRun.require`, a builtin) and pass them all.
Here the test cells come from the authored source (hidden tests included) and run in the grader's
process, where the learner's code never runs: each name the answer cell defines is bound to its source
(an `AnswerRef`), which only `run_isolated`'s fresh process executes, or, for a plain literal such as
`LEAK_LINE = 42`, to its value.
"""

from __future__ import annotations

import ast
import contextlib
import io

from . import cells
from .isolation import AnswerRef, RunFailed, answer_values
from .results import Reason, TestResult


def answer_names(source: str) -> dict[str, object]:
    """What an answer cell defines at its top level: literals by value, everything else by reference.
    An assignment binds as Python binds it: `A = B = 1`, `A, B = "call", 142`, `A: int = 3`."""
    names: dict[str, object] = {}
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[statement.name] = AnswerRef(source, statement.name)
        elif isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None:
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                names.update(_bound(target, statement.value, source))
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            names[statement.target.id] = AnswerRef(source, statement.target.id)
        else:  # a block (`if`, `for`, `with`, `try`...): what it binds, by reference, as the kernel has it bound
            names.update((name, AnswerRef(source, name)) for name in _bound_in_block(statement))
    return names


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp)
_SCOPES += (ast.DictComp, ast.GeneratorExp)


def _bound_in_block(statement: ast.stmt) -> list[str]:
    """The names a module-level block binds (assignments, loop and `with` targets, `:=`, `except ... as`,
    functions and classes), not those of the scopes inside it; imports are the answer's own business."""
    found, todo = [], list(ast.iter_child_nodes(statement))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.append(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.append(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found.append(node.name)
        if not isinstance(node, _SCOPES):
            todo.extend(ast.iter_child_nodes(node))
    return found


def _names_read(source: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}


def defined(source: str) -> set[str]:
    """The functions and classes an answer cell defines at its top level."""
    kinds = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    return {statement.name for statement in ast.parse(source).body if isinstance(statement, kinds)}


def _bound(target: ast.expr, value: ast.expr, source: str) -> dict[str, object]:
    """The names one assignment target binds: each to its literal where the value is one (element by
    element when both sides are tuples or lists of the same length), else by reference."""
    if isinstance(target, ast.Name):
        try:
            return {target.id: ast.literal_eval(value)}
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return {target.id: AnswerRef(source, target.id)}
    if isinstance(target, ast.Tuple | ast.List):
        starred = any(isinstance(element, ast.Starred) for element in target.elts)
        pairs = isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts) and not starred
        if not pairs:
            return _referenced(target, source)
        bound: dict[str, object] = {}
        for element, part in zip(target.elts, value.elts, strict=True):  # type: ignore[union-attr]
            bound.update(_bound(element, part, source))
        return bound
    return {}  # an attribute or a subscript: it binds no name


def _referenced(target: ast.expr, source: str) -> dict[str, object]:
    """Every name a target binds, by reference."""
    return {node.id: AnswerRef(source, node.id) for node in ast.walk(target) if isinstance(node, ast.Name)}


def _namespace(source: dict, submission: dict) -> tuple[dict[str, object], str, dict[str, str]]:
    """The names the tests see: the lesson's set-up cells run, the answer cells' names bound; the
    problem that fails every test, if an answer cell is missing or not valid Python; and why a name the
    tests read that a cell computes is missing (the cell raised, say), by name."""
    answers = {cells.grade_id(c): cells.text(c) for c in submission["cells"] if cells.is_answer(c)}
    namespace: dict[str, object] = {"__name__": "__verify__"}
    problem, setup, unbound = "", [], {}
    tested = {name for cell in cells.test_cells(source).values() for name in _names_read(cells.text(cell))}
    for cell in source["cells"]:
        if cell["cell_type"] != "code" or cells.is_test(cell):
            continue
        if cells.is_answer(cell):
            answer = answers.get(cells.grade_id(cell))
            if answer is None:
                problem = f"the answer cell {cells.grade_id(cell)} is missing from the submission"
                continue
            try:
                names = answer_names(answer)
            except SyntaxError as exc:
                problem = f"the answer cell {cells.grade_id(cell)} is not valid Python: {exc.msg} (line {exc.lineno})"
                continue
            wanted = tested - defined(answer)
            computed = [name for name, value in names.items() if isinstance(value, AnswerRef) and name in wanted]
            if computed:  # values the tests read that the cell computes: worked out in a fresh interpreter
                found, failed = answer_values(setup, answer, computed)
                if set(computed) - found.keys():  # from what the learner's own cells above it made, perhaps
                    above = _cells_above(submission, cells.grade_id(cell))
                    found, failed = answer_values(setup, answer, computed, above)
                names.update(found)
                for name in [name for name in computed if name not in found and failed]:
                    del names[name]  # never bound, as in the notebook, where the cell stopped before it
                    unbound[name] = failed
            namespace.update(names)
        elif cells.is_setup(cell):  # the lesson's own set-up: imports of the scenario's names
            setup.append(cells.text(cell))
            exec(
                compile(cells.text(cell), f"<{cells.grade_id(cell) or 'setup'}>", "exec", dont_inherit=True), namespace
            )
    return namespace, problem, unbound


def _cells_above(submission: dict, grade_id: str) -> list[str]:
    """The submission's code cells above its answer cell `grade_id`, but for the tests, in order."""
    above = []
    for cell in submission["cells"]:
        if cells.grade_id(cell) == grade_id:
            break
        if cell.get("cell_type") == "code" and not cells.is_test(cell):
            above.append(cells.text(cell))
    return above


def verify(source: dict, submission: dict) -> dict[str, TestResult]:
    """Run the source's test cells against the submission's answer cells; a result per grade id.

    An answer cell that is missing or does not parse fails every test, with the reason.
    """
    namespace, problem, unbound = _namespace(source, submission)
    results = {}
    for grade_id, cell in cells.test_cells(source).items():
        if cell["cell_type"] != "code":
            continue
        points = cells.points(cell)
        if problem:
            results[grade_id] = TestResult(0.0, points, problem)
            continue
        # The visible part, then the hidden one, so that a failure says which (the kernel has only the first).
        text = cells.text(cell)
        read = _names_read(text)
        tampered = [v.tampered for n, v in namespace.items() if n in read and isinstance(v, AnswerRef) and v.tampered]
        if tampered:  # a value it reads comes from a run caught tampering: that, not the value, is its failure
            results[grade_id] = TestResult(0.0, points, tampered[0], Reason.TAMPERED)
            continue
        parts = [cells.HIDDEN_TESTS.sub("", text), "".join(m.group(0) for m in cells.HIDDEN_TESTS.finditer(text))]
        results[grade_id] = TestResult(points, points)
        for hidden, part in enumerate(parts):
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(part, f"<{grade_id}>", "exec", dont_inherit=True), namespace)
            except BaseException as exc:  # a test's failure, whatever its kind, is that test's only
                if isinstance(exc, KeyboardInterrupt):
                    raise
                message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if isinstance(exc, NameError) and exc.name in unbound:  # the cell that should bind it failed
                    message += f" ({unbound[exc.name]})"
                reason = exc.reason if isinstance(exc, RunFailed) else None
                results[grade_id] = TestResult(0.0, points, message, reason, hidden=bool(hidden))
                break
    return results
