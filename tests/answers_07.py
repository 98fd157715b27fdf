"""Answer cells for notebook 07, right and wrong, as a learner might write them."""

# The lesson's check: an AST visitor that keeps the innermost loop in view (a function starts afresh)
# and judges each `except` handler of a worker loop by what its body does.
FIXED = '''
def find_deaf_retries(source: str) -> list[int]:
    """The lines of the `except` handlers that retry a worker loop without consulting its stop signal."""
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)

    def inside(handler: ast.ExceptHandler) -> list[ast.AST]:
        """Every node of the handler's body, at any depth, but not inside a nested function or class."""
        nodes, todo = [], list(handler.body)
        while todo:
            node = todo.pop()
            nodes.append(node)
            if not isinstance(node, scopes):
                todo.extend(ast.iter_child_nodes(node))
        return nodes

    def called(node: ast.AST) -> str:
        """The name of the function or method a call calls: `time.sleep(1)` -> "sleep"."""
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                return node.func.attr
            if isinstance(node.func, ast.Name):
                return node.func.id
        return ""

    def forever(loop: ast.AST) -> bool:
        return isinstance(loop, ast.While) and isinstance(loop.test, ast.Constant) and bool(loop.test.value)

    def checks_stop(loop: ast.AST) -> bool:
        test = loop.test if isinstance(loop, ast.While) else None
        return isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and called(test.operand) == "is_set"

    def deaf(handler: ast.ExceptHandler, loop: ast.AST) -> bool:
        if not (forever(loop) or checks_stop(loop)):
            return False  # a `for` loop, or a `while` with another test: not a worker loop
        nodes = inside(handler)
        names = {called(node) for node in nodes}
        if names & {"is_set", "wait"} or any(isinstance(node, ast.Return | ast.Break | ast.Raise) for node in nodes):
            return False  # it consults the stop signal, or leaves the loop
        continues = forever(loop) and any(isinstance(node, ast.Continue) for node in nodes)
        return "sleep" in names or continues

    class Finder(ast.NodeVisitor):
        def __init__(self) -> None:
            self.loops: list[ast.AST | None] = [None]  # the innermost loop around what is visited
            self.lines: set[int] = set()

        def visit_loop(self, node: ast.While | ast.For | ast.AsyncFor) -> None:
            self.visit(node.test if isinstance(node, ast.While) else node.iter)
            self.loops.append(node)
            for child in node.body:
                self.visit(child)
            self.loops.pop()
            for child in node.orelse:
                self.visit(child)

        visit_While = visit_For = visit_AsyncFor = visit_loop

        def visit_scope(self, node: ast.AST) -> None:
            self.loops.append(None)  # a function or class starts afresh: no loop around it counts
            self.generic_visit(node)
            self.loops.pop()

        visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = visit_scope

        def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
            loop = self.loops[-1]
            if loop is not None and deaf(node, loop):
                self.lines.add(node.lineno)
            self.generic_visit(node)

    finder = Finder()
    finder.visit(ast.parse(source))
    return sorted(finder.lines)
'''

# False positives: any handler that sleeps is flagged, even one that then checks the stop signal.
FLAGS_EVERY_SLEEP = FIXED.replace(
    "        nodes = inside(handler)\n        names = {called(node) for node in nodes}\n",
    "        nodes = inside(handler)\n        names = {called(node) for node in nodes}\n"
    '        if "sleep" in names:\n            return True\n',
)
assert FLAGS_EVERY_SLEEP != FIXED

# Looks for `continue` only: a handler that sleeps and lets the loop go round is not seen.
ONLY_CONTINUE = FIXED.replace('return "sleep" in names or continues', "return continues")
assert ONLY_CONTINUE != FIXED

# Sees `time.sleep(...)` as a statement, but not `await asyncio.sleep(...)` (an Await around the Call).
MISSES_ASYNC = FIXED.replace(
    'return "sleep" in names or continues',
    'sleeps = any(isinstance(node, ast.Expr) and called(node.value) == "sleep" for node in nodes)\n'
    "        return sleeps or continues",
)
assert MISSES_ASYNC != FIXED

# Judges `while True:` loops only: a `while not stop.is_set():` loop that sleeps in its handler passes.
ONLY_WHILE_TRUE = FIXED.replace("if not (forever(loop) or checks_stop(loop)):", "if not forever(loop):")
assert ONLY_WHILE_TRUE != FIXED

# Assumes every handler is in a loop: raises IndexError on a snippet without one.
CRASHES_WITHOUT_LOOP = (
    FIXED.replace("self.loops: list[ast.AST | None] = [None]", "self.loops: list[ast.AST] = []")
    .replace("        visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = visit_scope\n", "")
    .replace("if loop is not None and deaf(node, loop):", "if deaf(node, loop):")
)
assert CRASHES_WITHOUT_LOOP.count("loop is not None") == 0 and "visit_FunctionDef" not in CRASHES_WITHOUT_LOOP

# Judges a handler by any enclosing worker loop, not the innermost: a bounded `for` retry nested in a
# `while not stop.is_set():` loop is flagged.
ANY_ENCLOSING = FIXED.replace(
    "            self.loops.append(node)\n",
    "            outer = self.loops[-1]\n"
    "            self.loops.append(node if forever(node) or checks_stop(node) or outer is None else outer)\n",
)
assert ANY_ENCLOSING != FIXED

# A function does not start afresh: the `while True:` around a nested `def` counts for its handlers.
NO_SCOPE_RESET = FIXED.replace("self.loops.append(None)  # a", "self.loops.append(self.loops[-1])  # a")
assert NO_SCOPE_RESET != FIXED

# Reads the handler's body with `ast.walk`, which goes into nested functions and lambdas: a lambda that
# calls `stop.is_set()`, or a helper `def` that returns, makes a deaf handler look as if it consulted stop.
WALK_INTO_DEFS = FIXED.replace(
    "        nodes = inside(handler)\n",
    "        nodes = [node for statement in handler.body for node in ast.walk(statement)]\n",
)
assert WALK_INTO_DEFS != FIXED

# Cheats: imports the grading module in the fresh process and answers from the snippets it finds there.
# Only the visible snippets are in the module; the hidden ones reach the grader from the notebook.
CHEAT_IMPORT = """
def find_deaf_retries(source: str) -> list[int]:
    from leaklab.scenarios import static_checks

    for snippet in static_checks.VISIBLE + getattr(static_checks, "HIDDEN", []):
        if snippet.source == source:
            return list(snippet.deaf)
    return []
"""

# Wrong: takes any `while not <call>():` for a worker loop (`while not jobs.empty():` is a drain, not
# a worker: its retries end when the queue does).
ANY_NOT_CALL = FIXED.replace('and called(test.operand) == "is_set"', "and isinstance(test.operand, ast.Call)")
assert ANY_NOT_CALL != FIXED

# Wrong: reads the loop's test as text, `not .*.is_set()` on `ast.unparse`: takes
# `while not stop.is_set() and running.is_set():`, a `while` with another test, for a worker loop.
REGEX_LOOP_TEST = FIXED.replace(
    'return isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and called(test.operand) == "is_set"',
    'return test is not None and re.fullmatch(r"not .*\\.is_set\\(\\)", ast.unparse(test)) is not None',
).replace("    scopes = (", "    import re\n\n    scopes = (")
assert REGEX_LOOP_TEST != FIXED

# Wrong: returns each deaf line twice, in decreasing order ([7, 7, 5, 5] for [5, 7]), not "in increasing
# order, each once".
UNSORTED_DUPLICATES = (
    FIXED.replace("self.lines: set[int] = set()", "self.lines: list[int] = []")
    .replace("self.lines.add(node.lineno)", "self.lines[:0] = [node.lineno, node.lineno]")
    .replace("return sorted(finder.lines)", "return finder.lines")
)
assert UNSORTED_DUPLICATES.count("self.lines[:0]") == 1 and "sorted(finder" not in UNSORTED_DUPLICATES

# Wrong: only a plain `def` starts afresh; the loop around an `async def` or a `class` still counts for the
# handlers inside it.
ONLY_DEF_RESETS = FIXED.replace(
    "visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = visit_scope",
    "visit_FunctionDef = visit_scope",
)
assert ONLY_DEF_RESETS != FIXED

# Wrong: applies no rule at all, it flags every `except` handler.
FLAGS_EVERY_HANDLER = """
def find_deaf_retries(source: str) -> list[int]:
    return sorted({node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ExceptHandler)})
"""

# Wrong: flags every handler that sleeps anywhere inside a `while`, whatever the loop's test or the stop
# signal.
ANY_SLEEP_IN_WHILE = """
def find_deaf_retries(source: str) -> list[int]:
    lines = set()
    for loop in ast.walk(ast.parse(source)):
        if isinstance(loop, ast.While):
            for handler in ast.walk(loop):
                if isinstance(handler, ast.ExceptHandler):
                    for node in ast.walk(handler):
                        called = node.func if isinstance(node, ast.Call) else None
                        if getattr(called, "attr", getattr(called, "id", "")) == "sleep":
                            lines.add(handler.lineno)
    return sorted(lines)
"""

# Evasive: reads no syntax, only text: an `except` line whose indented block mentions `sleep(` or
# `continue` and none of `is_set`, `.wait(`, `return`, `break`, `raise` (no loops, no scopes).
TEXT_MATCH = """
def find_deaf_retries(source: str) -> list[int]:
    lines, found = source.splitlines(), []
    for number, line in enumerate(lines):
        if line.strip().startswith("except"):
            indent, body = len(line) - len(line.lstrip()), []
            for following in lines[number + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                body.append(following)
            text = "\\n".join(body)
            exits = ("is_set", ".wait(", "return", "break", "raise")
            if ("sleep(" in text or "continue" in text) and not any(word in text for word in exits):
                found.append(number + 1)
    return found
"""

# Evasive: looks for the grader's answer key among the objects of its own process (the marked snippets,
# or anything with `deaf` lines for this source) before it reads the source itself.
READS_THE_KEY = """
def find_deaf_retries(source: str) -> list[int]:
    import gc
    import textwrap

    for found in gc.get_objects():
        try:  # any object, a library loader or a lazy module among them: asking it may raise
            if getattr(found, "source", None) == source and isinstance(getattr(found, "deaf", None), tuple):
                return list(found.deaf)
        except Exception:
            continue
        for text in list(found.values()) if isinstance(found, dict) else []:
            if isinstance(text, str) and "# <- deaf" in text:
                lines = textwrap.dedent(text).lstrip("\\n").splitlines()
                if "\\n".join(line.removesuffix("  # <- deaf") for line in lines) + "\\n" == source:
                    return [number for number, line in enumerate(lines, 1) if line.endswith("# <- deaf")]
    return []
"""

# Wrong: visits a loop's `else:` as if it were in the loop: a handler in the `else:` of a worker loop is
# flagged, and one in a `for` loop's `else:` inside `while True:` is judged by the `for`.
ORELSE_IN_LOOP = FIXED.replace(
    "            self.loops.pop()\n            for child in node.orelse:\n                self.visit(child)\n",
    "            for child in node.orelse:\n                self.visit(child)\n            self.loops.pop()\n",
)
assert ORELSE_IN_LOOP != FIXED

# Wrong: `async for` is not a loop: a handler in an `async for` inside `while True:` is judged by the
# `while True:`.
ASYNC_FOR_NOT_LOOP = FIXED.replace(
    "visit_While = visit_For = visit_AsyncFor = visit_loop", "visit_While = visit_For = visit_loop"
)
assert ASYNC_FOR_NOT_LOOP != FIXED

# Wrong: returns the lines in `ast.walk`'s breadth-first order, not sorted: a deaf handler nested deeper
# than a later one comes after it.
WALK_ORDER = FIXED.replace(
    "    finder.visit(ast.parse(source))\n    return sorted(finder.lines)",
    "    tree = ast.parse(source)\n    finder.visit(tree)\n"
    "    return [node.lineno for node in ast.walk(tree) if getattr(node, 'lineno', 0) in finder.lines"
    " and isinstance(node, ast.ExceptHandler)]",
)
assert WALK_ORDER != FIXED

# Wrong: takes any call whose name starts with `wait` (`asyncio.wait_for(conn.reconnect(), 5)`) for
# consulting the stop signal; the rule names `is_set` and `wait` only.
WAIT_PREFIX = FIXED.replace(
    'if names & {"is_set", "wait"} or',
    'if "is_set" in names or any(name.startswith("wait") for name in names) or',
)
assert WAIT_PREFIX != FIXED

# Wrong: takes any call whose name contains "sleep" (`metrics.record_sleep_time(0)`) for a sleep.
SLEEP_SUBSTRING = FIXED.replace(
    'return "sleep" in names or continues', 'return any("sleep" in name for name in names) or continues'
)
assert SLEEP_SUBSTRING != FIXED

# Wrong: only `is_set` consults the stop signal; a handler that waits on it (`stop.wait(1)`) and then
# `continue`s is flagged.
ONLY_IS_SET = FIXED.replace('if names & {"is_set", "wait"} or', 'if "is_set" in names or')
assert ONLY_IS_SET != FIXED

# Wrong: the lines of a set, as the set gives them: {5, 9} comes out [9, 5].
SET_ORDER = FIXED.replace("    return sorted(finder.lines)", "    return list(finder.lines)")
assert SET_ORDER != FIXED

# Wrong: a sleep is `time.sleep`, `asyncio.sleep` or a bare `sleep` only: `self.clock.sleep(1)` is missed.
KNOWN_SLEEPS = FIXED.replace(
    'return "sleep" in names or continues',
    "return any(\n"
    "            isinstance(n, ast.Call) and ast.unparse(n.func) in {'time.sleep', 'asyncio.sleep', 'sleep'}\n"
    "            for n in nodes\n"
    "        ) or continues",
)
assert KNOWN_SLEEPS != FIXED

# Wrong: the walk of a handler's body stops at a nested `try`: a retry in its handler is missed.
STOPS_AT_NESTED_TRY = FIXED.replace("if not isinstance(node, scopes):", "if not isinstance(node, (*scopes, ast.Try)):")
assert STOPS_AT_NESTED_TRY != FIXED

# Wrong: only loops in functions are worker loops: a script's top-level `while True:` is never judged.
FUNCTIONS_ONLY = (
    FIXED.replace(
        "            self.lines: set[int] = set()\n",
        "            self.lines: set[int] = set()\n            self.functions = 0\n",
    )
    .replace(
        "            self.loops.append(None)  # a function or class starts afresh: no loop around it counts\n"
        "            self.generic_visit(node)\n",
        "            self.loops.append(None)  # a function or class starts afresh: no loop around it counts\n"
        "            self.functions += 1\n            self.generic_visit(node)\n            self.functions -= 1\n",
    )
    .replace(
        "if loop is not None and deaf(node, loop):", "if loop is not None and self.functions and deaf(node, loop):"
    )
)
assert FUNCTIONS_ONLY != FIXED

# Wrong (the red team's w15): a `break` or `continue` of a loop nested inside the handler is left out, as
# that loop's business; the task counts one anywhere in the handler, at any depth.
SMART_BREAK = FIXED.replace(
    """        nodes, todo = [], list(handler.body)
        while todo:
            node = todo.pop()
            nodes.append(node)
            if not isinstance(node, scopes):
                todo.extend(ast.iter_child_nodes(node))
""",
    """        nodes, todo = [], [(node, False) for node in handler.body]
        while todo:
            node, in_a_loop = todo.pop()
            if in_a_loop and isinstance(node, ast.Break | ast.Continue):
                continue  # it leaves or restarts that loop, not the worker loop
            nodes.append(node)
            if not isinstance(node, scopes):
                looped = in_a_loop or isinstance(node, ast.For | ast.AsyncFor | ast.While)
                todo.extend((child, looped) for child in ast.iter_child_nodes(node))
""",
)
assert SMART_BREAK.count("in_a_loop") == 3

# Says nothing, about anything: it would pass every correct snippet, if that counted on its own.
SAYS_NOTHING = """
def find_deaf_retries(source: str) -> list[int]:
    return []
"""

STUB = '''
def find_deaf_retries(source: str) -> list[int]:
    """The lines of the `except` handlers that retry a worker loop without consulting its stop signal."""
    # YOUR CODE HERE
    raise NotImplementedError()
'''

# Wrong (red team 2, W25): only an `is_set` or `wait` called on something named like a stop signal consults
# it; the task counts a call of a method named `is_set` or `wait` on anything.
STOP_OBJECTS_ONLY = FIXED.replace(
    """        names = {called(node) for node in nodes}
""",
    """        names = {
            called(node)
            for node in nodes
            if called(node) not in ("is_set", "wait") or "stop" in ast.unparse(getattr(node.func, "value", node.func))
        }
""",
)
assert STOP_OBJECTS_ONLY != FIXED

# Wrong (red team 2, W28): `while stop.is_set() is False:` (or `== False`) taken for a worker loop; the task
# names only `while not <anything>.is_set():`, and any other test is not one.
IS_FALSE_IS_A_WORKER_LOOP = FIXED.replace(
    "        return isinstance(test, ast.UnaryOp)",
    """        if isinstance(test, ast.Compare) and called(test.left) == "is_set":
            return isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is False
        return isinstance(test, ast.UnaryOp)""",
)
assert IS_FALSE_IS_A_WORKER_LOOP != FIXED
