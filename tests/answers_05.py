"""Answer cells for notebook 05, right and wrong, as a learner might write them."""

# The diagnosis: the function and line where the leaked tasks wait, innermost frame of the service's
# own code in the dump's biggest group. The line is read from the source, as a learner reads the dump.
import inspect

from leaklab.scenarios.mystery_service import MysteryService, RpcClient, _leak_line_in_source

DIAGNOSIS = f'LEAK_FUNCTION = "call"\nLEAK_LINE = {_leak_line_in_source()}\n'

# Right too: the method's qualified name.
DIAGNOSIS_QUALIFIED = DIAGNOSIS.replace('"call"', '"RpcClient.call"')

# Wrong: the outer frame of the group (the route that calls the client), not where the tasks wait.
_lines, _first = inspect.getsourcelines(MysteryService.price)
_PRICE_LINE = _first + next(i for i, line in enumerate(_lines) if "await self.client.call" in line)
DIAGNOSIS_OUTER_FRAME = f'LEAK_FUNCTION = "price"\nLEAK_LINE = {_PRICE_LINE}\n'

# Wrong: the line is right but the function named is the reader, where the bug is, not where they wait.
DIAGNOSIS_WRONG_FUNCTION = f'LEAK_FUNCTION = "read_replies"\nLEAK_LINE = {_leak_line_in_source()}\n'

# Wrong: the function is right, the line is the method's `def` (where it starts, not where it waits).
_CALL_DEF_LINE = inspect.getsourcelines(RpcClient.call)[1]
DIAGNOSIS_WRONG_LINE = f'LEAK_FUNCTION = "call"\nLEAK_LINE = {_CALL_DEF_LINE}\n'

# Wrong: the values are right but the line is a str, as copied out of the dump's text.
DIAGNOSIS_LINE_AS_STR = f'LEAK_FUNCTION = "call"\nLEAK_LINE = "{_leak_line_in_source()}"\n'

# Right, in other forms a learner writes: both names in one assignment; the line read with inspect.
DIAGNOSIS_TUPLE = f'LEAK_FUNCTION, LEAK_LINE = "call", {_leak_line_in_source()}\n'
DIAGNOSIS_COMPUTED = """import inspect

from leaklab.scenarios.mystery_service import RpcClient

lines, first = inspect.getsourcelines(RpcClient.call)
LEAK_FUNCTION = RpcClient.call.__name__
LEAK_LINE = first + next(i for i, line in enumerate(lines) if "await entry.future" in line)
"""

# Right, with the work done in the learner's own cells above the answer (a magic line and a cell that
# fails on the way, as notebooks have): the answer cell only reads what they left.
CELLS_ABOVE_THE_DIAGNOSIS = [
    "%matplotlib inline\nimport inspect\n\nfrom leaklab.scenarios.mystery_service import RpcClient\n",
    "lines, first = inspect.getsourcelines(RpcClient.call)\n",
    "raise RuntimeError('a demo that failed')\n",
]
DIAGNOSIS_FROM_CELLS_ABOVE = """LEAK_FUNCTION = RpcClient.call.__name__
LEAK_LINE = first + next(i for i, line in enumerate(lines) if "await entry.future" in line)
"""

# Right, read from a live dump with a top-level `await`, as the notebook's own cells run traffic: the
# grader runs such a cell as IPython does. The same, from a cell above that awaited, the dump in a variable.
DIAGNOSIS_AWAITED = """import re

from leaklab.scenarios.mystery_service import RunningService

service = RunningService()
await service.send(100, hang_ups=2)
dump = leaklab.task_dump()
service.stop()
frame = re.search(r"^#\\s+(\\w+)\\s+\\S*mystery_service\\.py:(\\d+)$", dump, re.M)
LEAK_FUNCTION, LEAK_LINE = frame.group(1), int(frame.group(2))
"""
CELL_ABOVE_THAT_AWAITS = (
    "service = RunningService()\nawait service.send(100, hang_ups=2)\ngrouped = leaklab.task_dump()\nservice.stop()\n"
)
DIAGNOSIS_FROM_AN_AWAITED_CELL = """import re

frame = re.search(r"^#\\s+(\\w+)\\s+\\S*mystery_service\\.py:(\\d+)$", grouped, re.M)
LEAK_FUNCTION, LEAK_LINE = frame.group(1), int(frame.group(2))
"""

# Right, read from `grouped`, the dump section 2's own cell fetched while it recorded the service with
# memray: the grader runs that cell too, and its recording needs a folder it may write in.
DIAGNOSIS_FROM_SECTION_2 = """import re

biggest = grouped.split("\\n\\n")[1]
frame = re.search(r"^#\\s+(\\w+)\\s+\\S*mystery_service\\.py:(\\d+)", biggest, re.M)
LEAK_FUNCTION, LEAK_LINE = frame.group(1), int(frame.group(2))
"""

DIAGNOSIS_STUB = "# YOUR CODE HERE\nraise NotImplementedError()\n"

# The fix: the reader resolves every reply, an error reply with the backend's error; the caller's
# entry leaves the table whatever happens (`finally:`), so a caller that gave up leaves nothing either.
FIXED = """
class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}
        self.last_id = 0
        self.errors = 0

    async def call(self, sku: int) -> int:
        self.last_id += 1
        request_id = self.last_id
        frame = encode(request_id, sku)
        entry = Pending(asyncio.get_running_loop().create_future(), frame)
        self.pending[request_id] = entry
        try:
            self.backend.send(frame)
            return await entry.future
        finally:
            self.pending.pop(request_id, None)

    async def read_replies(self) -> None:
        while True:
            reply = await self.backend.receive()
            entry = self.pending.pop(reply.id, None)
            if entry is None or entry.future.done():
                continue
            if reply.error:
                self.errors += 1
                entry.future.set_exception(BackendError(reply.error))
            else:
                entry.future.set_result(reply.value)
"""

# Right: the fix, then a try of it by hand in the same cell with a top-level `await` (the notebook's own
# cells await): the grader runs the cell as IPython does, its try to the end, before the checks.
FIXED_TRIED_BY_HAND = (
    FIXED
    + """

async def try_it():
    client = RpcClient(Backend())
    reader = asyncio.create_task(client.read_replies())
    try:
        for sku in range(3):
            try:
                print(sku, await client.call(sku))
            except BackendError as error:
                print(sku, "error:", error)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


await try_it()
"""
)

# Wrong (the reviewer's second round, 05/f13): a request id is the first one free in `pending`, so ids are
# reused: a caller that hung up leaves its id to a new call, which then gets the first caller's late reply.
REUSES_IDS = FIXED.replace(
    """        self.last_id += 1
        request_id = self.last_id
        frame""",
    """        request_id = len(self.pending) + 1
        while request_id in self.pending:
            request_id += 1
        frame""",
)
assert REUSES_IDS != FIXED

# Evasive (the reviewer's second round, 05/f16): the reader still drops error replies; a call that hears
# nothing within 50 ms makes the error up from its sku, not the backend's message.
MAKES_UP_THE_ERROR = FIXED.replace(
    """            return await entry.future
""",
    """            try:
                return await asyncio.wait_for(entry.future, 0.05)
            except TimeoutError:
                raise BackendError(f"unknown sku {sku}") from None
""",
).replace(
    """            if reply.error:
                self.errors += 1
                entry.future.set_exception(BackendError(reply.error))
            else:
                entry.future.set_result(reply.value)
""",
    """            if reply.error:
                self.errors += 1
            else:
                entry.future.set_result(reply.value)
""",
)
assert MAKES_UP_THE_ERROR.count("wait_for") == 1 and "set_exception" not in MAKES_UP_THE_ERROR

# Wrong (loses the 2 points of (c)): only the reader changes; it pops every entry whose reply comes and
# resolves it. A caller that gives up before a reply that never comes (the grader cancels a few while the
# backend's replies are lost) leaves its entry, and its 64 KiB frame, in the table for ever: no `finally:`.
READER_ONLY = FIXED.replace(
    """        try:
            self.backend.send(frame)
            return await entry.future
        finally:
            self.pending.pop(request_id, None)
""",
    """        self.backend.send(frame)
        return await entry.future
""",
)
assert READER_ONLY != FIXED

# The leaky client as the lesson shows it.
LEAKY = """
class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}
        self.last_id = 0
        self.errors = 0

    async def call(self, sku: int) -> int:
        self.last_id += 1
        frame = encode(self.last_id, sku)
        entry = Pending(asyncio.get_running_loop().create_future(), frame)
        self.pending[self.last_id] = entry
        self.backend.send(frame)
        return await entry.future

    async def read_replies(self) -> None:
        while True:
            reply = await self.backend.receive()
            if reply.error:
                self.errors += 1
            elif (entry := self.pending.pop(reply.id, None)) is not None and not entry.future.done():
                entry.future.set_result(reply.value)
"""

# Tasks end, memory grows: a timeout around the wait frees the caller, but the entry (and its 64 KiB
# frame) stays in the table for ever; and the caller gets a timeout, not the backend's error.
TIMES_OUT = LEAKY.replace(
    "        return await entry.future\n",
    "        async with asyncio.timeout(0.5):\n            return await entry.future\n",
)
assert TIMES_OUT != LEAKY

# Tasks end, answers right, memory grows: the error reply is handed over, but its entry stays.
RESOLVES_BUT_KEEPS_ENTRY = LEAKY.replace(
    """                self.errors += 1
""",
    """                self.errors += 1
                self.pending[reply.id].future.set_exception(BackendError(reply.error))
""",
)
assert RESOLVES_BUT_KEEPS_ENTRY != LEAKY

# Drops work: an error reply is taken for a broken connection, and every call in flight fails with it.
FAILS_EVERY_CALL = LEAKY.replace(
    """                self.errors += 1
""",
    """                self.errors += 1
                for entry in self.pending.values():
                    entry.future.set_exception(BackendError(reply.error))
                self.pending.clear()
""",
)
assert FAILS_EVERY_CALL != LEAKY

# The unmodified exercise: every method body is a stub.
STUB = """
class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}
        self.last_id = 0
        self.errors = 0

    async def call(self, sku: int) -> int:
        # YOUR CODE HERE
        raise NotImplementedError()

    async def read_replies(self) -> None:
        # YOUR CODE HERE
        raise NotImplementedError()
"""

# Correct too: the reader hands the Reply itself to the caller, who raises for an error reply; the
# entry leaves in `finally:`.
REPLY_OBJECT = """
class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}
        self.last_id = 0
        self.errors = 0

    async def call(self, sku: int) -> int:
        self.last_id += 1
        request_id = self.last_id
        frame = encode(request_id, sku)
        self.pending[request_id] = entry = Pending(asyncio.get_running_loop().create_future(), frame)
        try:
            self.backend.send(frame)
            reply = await entry.future
        finally:
            self.pending.pop(request_id, None)
        if reply.error:
            raise BackendError(reply.error)
        return reply.value

    async def read_replies(self) -> None:
        while True:
            reply = await self.backend.receive()
            entry = self.pending.get(reply.id)
            if reply.error:
                self.errors += 1
            if entry is not None and not entry.future.done():
                entry.future.set_result(reply)
"""

# A cheat (loses the 2 points of (d)): it sends the frame, so the backend counts as asked, drains the
# replies without reading them, and makes the price up from the formula in the module's source. Every
# backend has a price list of its own: only its reply carries the price.
CHEAT_LOCAL_PRICE = """
class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}
        self.last_id = 0
        self.errors = 0

    async def call(self, sku: int) -> int:
        self.last_id += 1
        self.backend.send(encode(self.last_id, sku))
        await asyncio.sleep(0)
        if not 1000 <= sku < 1100:
            raise BackendError(f"unknown sku {sku}")
        return 199 + (sku * 37) % 5000

    async def read_replies(self) -> None:
        while True:
            await self.backend.receive()
"""

# Wrong (the reviewer's 05/18): the entry leaves only when the caller is cancelled, and the reader pops
# without a default: a reply that comes late, after its caller has gone, kills the reader (KeyError), and
# every call after it waits for ever.
LATE_REPLY_KILLS_READER = FIXED.replace(
    """        finally:
            self.pending.pop(request_id, None)
""",
    """        except asyncio.CancelledError:
            self.pending.pop(request_id, None)
            raise
""",
).replace(
    """            entry = self.pending.pop(reply.id, None)
            if entry is None or entry.future.done():
                continue
""",
    """            entry = self.pending.pop(reply.id)
""",
)
assert LATE_REPLY_KILLS_READER.count("pop(") == 2 and "finally" not in LATE_REPLY_KILLS_READER

# A cheat (the reviewer's 05/42): `pending` is a property that is always empty; the real table, of
# futures only (no frames), is kept elsewhere and never loses the callers who hung up.
HIDDEN_TABLE = """
class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}
        self.last_id = 0
        self.errors = 0

    @property
    def pending(self):
        return {}

    @pending.setter
    def pending(self, value):
        self._waiting = {}

    async def call(self, sku: int) -> int:
        self.last_id += 1
        future = asyncio.get_running_loop().create_future()
        self._waiting[self.last_id] = future
        self.backend.send(encode(self.last_id, sku))
        return await future

    async def read_replies(self) -> None:
        while True:
            reply = await self.backend.receive()
            future = self._waiting.pop(reply.id, None)
            if future is None or future.done():
                continue
            if reply.error:
                self.errors += 1
                future.set_exception(BackendError(reply.error))
            else:
                future.set_result(reply.value)
"""

# A cheat (the reviewer's 05/43): it sends the frame, so the backend counts as asked, then answers from
# the backend's public `price()` and a guessed range of unknown skus, never from a reply.
PRICE_WITHOUT_REPLY = """
class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}
        self.last_id = 0
        self.errors = 0

    async def call(self, sku: int) -> int:
        self.last_id += 1
        self.backend.send(encode(self.last_id, sku))
        if sku >= 9000:
            raise BackendError(f"unknown sku {sku}")
        return self.backend.price(sku)

    async def read_replies(self) -> None:
        while True:
            reply = await self.backend.receive()
            if reply.error:
                self.errors += 1
"""

# Correct too (the reviewer's 05/02): the entry is a context manager's, the reader hands the Reply over,
# and a module-level logger sits in the cell's globals (which the search for kept futures walks).
CONTEXT_MANAGER = """
import contextlib
import logging

logger = logging.getLogger("pricing-client")


class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}  # request id -> the call waiting for that reply
        self.last_id = 0
        self.errors = 0

    @contextlib.contextmanager
    def _registered(self, request_id: int, entry: Pending):
        self.pending[request_id] = entry
        try:
            yield entry
        finally:
            del self.pending[request_id]

    async def call(self, sku: int) -> int:
        self.last_id += 1
        request_id = self.last_id
        frame = encode(request_id, sku)
        loop = asyncio.get_running_loop()
        with self._registered(request_id, Pending(loop.create_future(), frame)) as entry:
            self.backend.send(frame)
            reply: Reply = await entry.future
        if reply.error:
            raise BackendError(reply.error)
        return reply.value

    async def read_replies(self) -> None:
        while True:
            reply = await self.backend.receive()
            if reply.error:
                self.errors += 1
                logger.debug("request %d failed: %s", reply.id, reply.error)
            entry = self.pending.get(reply.id)
            if entry is not None and not entry.future.done():
                entry.future.set_result(reply)
"""

# Correct too (the reviewer's 05/05): the caller waits with `asyncio.wait`, so the future it is
# suspended on is not the one in its entry; the entry leaves in `finally:`.
WAITS_WITH_WAIT = """
class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}  # request id -> the call waiting for that reply
        self.last_id = 0
        self.errors = 0

    async def call(self, sku: int) -> int:
        self.last_id += 1
        my_id = self.last_id
        entry = Pending(asyncio.get_running_loop().create_future(), encode(my_id, sku))
        self.pending[my_id] = entry
        try:
            self.backend.send(entry.frame)
            await asyncio.wait([entry.future])
            return entry.future.result()
        except asyncio.CancelledError:
            entry.future.cancel()
            raise
        finally:
            self.pending.pop(my_id, None)

    async def read_replies(self) -> None:
        while True:
            reply = await self.backend.receive()
            entry = self.pending.get(reply.id)
            if reply.error:
                self.errors += 1
            if entry is None or entry.future.done():
                continue
            if reply.error:
                entry.future.set_exception(BackendError(reply.error))
            else:
                entry.future.set_result(reply.value)
"""

# Wrong: each call sends its frame twice, "in case one is lost" (the task: one frame per call).
SENDS_TWICE = FIXED.replace("            self.backend.send(frame)\n", "            self.backend.send(frame)\n" * 2, 1)
assert SENDS_TWICE.count("self.backend.send(frame)") == 2

# Evasive (review 4): call() sends the frame, then works out the backend's reply itself with the module's
# private `_reply_to`, and never waits for it; the reader throws every reply away. A price only a reply
# carries (the grader's backend draws each reply's own) is not one it can work out.
REPLY_WORKED_OUT = """
import leaklab.scenarios.mystery_service as _service


class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}
        self.last_id = 0
        self.errors = 0

    async def call(self, sku: int) -> int:
        self.last_id += 1
        self.backend.send(encode(self.last_id, sku))
        reply = _service._reply_to(self.backend, self.last_id, sku)
        if reply.error is not None:
            raise BackendError(reply.error)
        return reply.value

    async def read_replies(self) -> None:
        while True:
            reply = await self.backend.receive()
            self.errors += reply.error is not None
"""

# Evasive (review 4): the entry leaves `pending` in its `finally:`, but a caller that gave up parks its
# future (frame dropped) on the backend, in case its reply comes after all: for a reply that never comes,
# it stays there for ever, reachable from the client through its `backend`.
PARKS_ON_THE_BACKEND = FIXED.replace(
    "        finally:\n            self.pending.pop(request_id, None)\n",
    "        finally:\n"
    "            self.pending.pop(request_id, None)\n"
    "            if entry.future.cancelled():\n"
    "                if not hasattr(self.backend, 'parked'):\n"
    "                    self.backend.parked = {}\n"
    "                self.backend.parked[request_id] = Pending(entry.future, b'')\n",
).replace(
    "            reply = await self.backend.receive()\n",
    "            reply = await self.backend.receive()\n"
    "            getattr(self.backend, 'parked', {}).pop(reply.id, None)\n",
)
assert PARKS_ON_THE_BACKEND.count("parked") == 4

# Correct too, close to the two above: the backend is the client's, and it keeps a note of each call that
# gave up (its request id only, no future), which a late reply clears; a reply that never comes leaves a
# number behind, not a call.
NOTES_GAVE_UP_IDS = (
    FIXED.replace(
        "        finally:\n            self.pending.pop(request_id, None)\n",
        "        finally:\n"
        "            self.pending.pop(request_id, None)\n"
        "            if entry.future.cancelled():\n"
        "                self.gave_up.add(request_id)\n",
    )
    .replace(
        "        self.errors = 0\n",
        "        self.errors = 0\n        self.gave_up: set[int] = set()\n",
    )
    .replace(
        "            reply = await self.backend.receive()\n",
        "            reply = await self.backend.receive()\n            self.gave_up.discard(reply.id)\n",
    )
)
assert NOTES_GAVE_UP_IDS.count("gave_up") == 3

# Evasive (review 4): the diagnosis read from the grader's own answer, not from the dump.
DIAGNOSIS_FROM_THE_GRADER = """from leaklab.scenarios import mystery_service

LEAK_FUNCTION, LEAK_LINE = mystery_service._where_the_leak_waits()
"""

# Wrong (the red team's w5): call() swallows its caller's cancellation and returns 0: a caller who hung up
# gets a price of 0.00 and its task does not end cancelled (its entry is forgotten, so the table empties).
SWALLOWS_CANCELLATION = FIXED.replace(
    """        try:
            self.backend.send(frame)
            return await entry.future
        finally:
            self.pending.pop(request_id, None)
""",
    """        self.backend.send(frame)
        try:
            return await entry.future
        except asyncio.CancelledError:
            del self.pending[request_id]
            return 0
""",
)
assert SWALLOWS_CANCELLATION.count("return 0") == 1

# Evasive (the red team's e1): careful only where a grader may be looking, a backend of another class than
# the course's `Backend`; with the course's own, it is the leaky client.
CAREFUL_ONLY_WHEN_GRADED = (
    FIXED.replace(
        "        self.errors = 0\n",
        "        self.errors = 0\n        self._careful = type(backend) is not Backend\n",
    )
    .replace(
        """        try:
            self.backend.send(frame)
            return await entry.future
        finally:
""",
        """        if not self._careful:
            self.backend.send(frame)
            return await entry.future
        try:
            self.backend.send(frame)
            return await entry.future
        finally:
""",
    )
    .replace(
        """            entry = self.pending.pop(reply.id, None)
""",
        """            if reply.error and not self._careful:
                self.errors += 1
                continue
            entry = self.pending.pop(reply.id, None)
""",
    )
)
assert CAREFUL_ONLY_WHEN_GRADED.count("_careful") == 3

# Evasive (the red team's e5): the real table is a mutable default argument of call(), of futures without
# their frames, never cleaned of the callers who hung up; `pending` stays empty.
TABLE_IN_A_DEFAULT = """
class RpcClient:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[int, Pending] = {}
        self.last_id = 0
        self.errors = 0

    async def call(self, sku: int, _in_flight: dict = {}) -> int:
        self.last_id += 1
        future = asyncio.get_running_loop().create_future()
        _in_flight[self.last_id] = Pending(future, b"")
        self.backend.send(encode(self.last_id, sku))
        return await future

    async def read_replies(self) -> None:
        in_flight = self.call.__defaults__[0]
        while True:
            reply = await self.backend.receive()
            entry = in_flight.pop(reply.id, None)
            if entry is None or entry.future.done():
                continue
            if reply.error:
                self.errors += 1
                entry.future.set_exception(BackendError(reply.error))
            else:
                entry.future.set_result(reply.value)
"""

# Correct too: the caller waits in a coroutine of its own under `asyncio.wait_for` (a task of its own, with a
# long deadline). A caller who hangs up cancels that task too, which keeps its CancelledError, whose
# traceback holds the coroutine's frame and its entry: nothing of the client's, so nothing kept.
WAITS_IN_A_COROUTINE = FIXED.replace(
    "            return await entry.future\n", "            return await asyncio.wait_for(self._reply(entry), 30)\n"
).replace(
    "    async def read_replies(self) -> None:\n",
    "    async def _reply(self, entry: Pending) -> int:\n        return await entry.future\n\n"
    "    async def read_replies(self) -> None:\n",
)
assert WAITS_IN_A_COROUTINE.count("_reply(") == 2

# Evasive (red team 2, e2b): the reader still drops error replies; a call asks the scenario module's own
# `_quote` and `_refusal` (the grader's notes of what its backend will refuse, and the error's message)
# instead of waiting for the backend's reply. They are the grader's truth: the run ends as tampered.
ASKS_THE_GRADERS_QUOTE = MAKES_UP_THE_ERROR.replace(
    """            try:
                return await asyncio.wait_for(entry.future, 0.05)
            except TimeoutError:
                raise BackendError(f"unknown sku {sku}") from None
""",
    """            scenario = __import__("sys").modules["leaklab.scenarios.mystery_service"]
            if scenario._quote(self.backend, sku) is None:
                raise BackendError(scenario._refusal(self.backend, sku))
            return await entry.future
""",
)
assert ASKS_THE_GRADERS_QUOTE != MAKES_UP_THE_ERROR
