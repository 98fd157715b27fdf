"""Answer cells for notebook 01, right and wrong, as a learner might write them."""

import inspect

from leaklab.scenarios.forgotten_cancel import leaky_handle_request

# The lesson's leaky handler itself, as a learner who changed nothing would submit it.
LEAKY = inspect.getsource(leaky_handle_request).replace("leaky_handle_request", "handle_request")

# The article's fix: room for one result and a send that never blocks; the child ends on its own.
BUFFERED = """
async def handle_request(request: Request) -> Result:
    reply = asyncio.Queue(maxsize=1)

    async def run_query():
        reply.put_nowait(await slow_query(request))

    child = asyncio.create_task(run_query())
    background_tasks.add(child)
    child.add_done_callback(background_tasks.discard)
    async with asyncio.timeout(request.deadline_ms / 1000):
        return await reply.get()
"""

TASK_GROUP = """
async def handle_request(request: Request) -> Result:
    async with asyncio.timeout(request.deadline_ms / 1000):
        async with asyncio.TaskGroup() as group:
            child = group.create_task(slow_query(request))
    return child.result()
"""

# Evasive: the handler is the buffered fix, but every other request leaves a helper process
# behind (a "cache warmer" that never ends), one of them orphaned on purpose (a double fork): no task,
# thread or socket of the run's own process is left, the processes hold on.
IN_A_SUBPROCESS = BUFFERED.replace(
    "    child = asyncio.create_task(run_query())",
    """    import os
    import subprocess
    import sys

    warmer = [sys.executable, "-c", "import time; time.sleep(600)"]
    if request.id % 4 == 1:
        subprocess.Popen(warmer, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    elif request.id % 4 == 3 and os.fork() == 0:  # the orphan: its parent ends at once
        if os.fork() == 0:
            os.execv(sys.executable, warmer)
        os._exit(0)
    child = asyncio.create_task(run_query())""",
)
assert IN_A_SUBPROCESS != BUFFERED

# Waits for the query even after giving up: no leak, but the caller is kept waiting.
BLOCKS_CALLER = """
async def handle_request(request: Request) -> Result:
    child = asyncio.create_task(slow_query(request))
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            return await asyncio.shield(child)
    except BaseException:
        await child
        raise
"""

# Evasive: keeps its caller waiting like BLOCKS_CALLER, then rewrites on the request what the query
# recorded there (when it finished, how often it ran), as if it had given up first.
REWRITES_THE_WITNESS = BLOCKS_CALLER.replace(
    "        await child\n",
    "        await child\n"
    "        for field, value in (('query_done_at', None), ('queries', 1)):\n"
    "            object.__setattr__(request, field, value)\n",
)
assert REWRITES_THE_WITNESS != BLOCKS_CALLER

# Never runs the query: nothing to leak, nothing served.
NO_CHILD = """
async def handle_request(request: Request) -> Result:
    return Result(request.id, bytes(PAYLOAD_BYTES))
"""

# Drops the reference: the garbage collector may destroy the stuck children, the loop holds them until then.
UNREFERENCED = LEAKY.replace(
    "    background_tasks.add(child)\n    child.add_done_callback(background_tasks.discard)\n", ""
)
assert UNREFERENCED != LEAKY

# Never answers at all.
HANGS = """
async def handle_request(request: Request) -> Result:
    await asyncio.Event().wait()
"""

# Still leaks, and blinds every counter the kernel offers.
PATCHED_COUNTERS = (
    """
import threading

asyncio.all_tasks = lambda loop=None: set()
threading.active_count = lambda: 1
threading.enumerate = lambda: [threading.main_thread()]
len = lambda items: 0
"""
    + LEAKY
)

STUB = """
async def handle_request(request: Request) -> Result:
    # YOUR CODE HERE
    raise NotImplementedError()
"""

# Still leaks, and rebinds builtins the grader's own code calls.
PATCHED_BUILTINS = (
    """
import builtins

builtins.len = lambda items: 0
builtins.max = lambda *items, **options: 0
"""
    + LEAKY
)

# Still leaks, and hides each stuck child from asyncio's task registry.
HIDDEN_FROM_REGISTRY = LEAKY.replace(
    "    background_tasks.add(child)\n",
    "    background_tasks.add(child)\n"
    "    for name in ('_all_tasks', '_scheduled_tasks'):\n"
    "        getattr(asyncio.tasks, name, set()).discard(child)\n",
)
assert HIDDEN_FROM_REGISTRY != LEAKY

# Still leaks, and switches the memory measurement off.
STOPS_TRACEMALLOC = LEAKY.replace(
    "    reply.task_done()\n", "    reply.task_done()\n    __import__('tracemalloc').stop()\n"
)
assert STOPS_TRACEMALLOC != LEAKY

# Correct, and uses the default executor's threads on the way.
TASK_GROUP_WITH_THREAD = TASK_GROUP.replace(
    "    async with asyncio.timeout", "    await asyncio.to_thread(sum, [1, 2])\n    async with asyncio.timeout"
)
assert TASK_GROUP_WITH_THREAD != TASK_GROUP

# No child task: the query runs in the handler's own task, under the deadline.
DIRECT = """
async def handle_request(request: Request) -> Result:
    async with asyncio.timeout(request.deadline_ms / 1000):
        return await slow_query(request)
"""

# wait_for cancels the query at the deadline, or when the handler is cancelled.
WAIT_FOR = """
async def handle_request(request: Request) -> Result:
    return await asyncio.wait_for(slow_query(request), timeout=request.deadline_ms / 1000)
"""

# Right, bound under the task's name but made another way: a decorator (its wrapper is named `timed`),
# a partial, an object with an async `__call__`. The grader looks the answer up by the name the task
# gives it, `handle_request`, whatever `__name__` the object has.
DECORATED = """
import functools


def deadline_of(serve):
    @functools.wraps(serve)
    async def timed(request):
        return await asyncio.wait_for(serve(request), timeout=request.deadline_ms / 1000)

    return timed


async def _serve(request: Request) -> Result:
    return await slow_query(request)


handle_request = deadline_of(_serve)
"""
PARTIAL = """
import functools


async def _handle(request: Request, *, scale: float) -> Result:
    return await asyncio.wait_for(slow_query(request), timeout=request.deadline_ms * scale)


handle_request = functools.partial(_handle, scale=1 / 1000)
"""
CALLABLE_OBJECT = """
class _Handler:
    async def __call__(self, request: Request) -> Result:
        async with asyncio.timeout(request.deadline_ms / 1000):
            return await slow_query(request)


handle_request = _Handler()
"""

# Raises TimeoutError at half of request.deadline_ms, before the deadline has passed.
EARLY_TIMEOUT = DIRECT.replace("request.deadline_ms / 1000", "request.deadline_ms / 2000")
assert EARLY_TIMEOUT != DIRECT

# Still leaks: each child of a request that gave up waits 5 s in join() holding its result, then ends.
JOIN_WITH_TIMEOUT = LEAKY.replace(
    "        await reply.join()  # like Go's unbuffered send: wait until the handler has taken it\n",
    "        try:\n"
    "            await asyncio.wait_for(reply.join(), timeout=5)\n"
    "        except TimeoutError:\n"
    "            pass\n",
)
assert JOIN_WITH_TIMEOUT != LEAKY

# Evasive: still leaks, through a Task subclass whose done() says True while it waits (no reference kept).
TASK_LIES_DONE = """
class QuietTask(asyncio.Task):
    def done(self):
        return True

""" + UNREFERENCED.replace(
    "child = asyncio.create_task(run_query())", "child = QuietTask(run_query(), loop=asyncio.get_running_loop())"
)
assert "QuietTask(run_query()" in TASK_LIES_DONE

# Enforces the deadline only when it is short (under 500 ms): a request with a long one waits for its query.
SHORT_DEADLINES_ONLY = DIRECT.replace(
    "asyncio.timeout(request.deadline_ms / 1000)",
    "asyncio.timeout(request.deadline_ms / 1000 if request.deadline_ms < 500 else None)",
)
assert SHORT_DEADLINES_ONLY != DIRECT

# Evasive: the leaky hand-off, its child a coroutine stepped by hand (no asyncio.Task) that, once its handler has
# gone, drops its result and waits for ever on a future nothing resolves, kept in a module-level set.
TASKLESS_CHILD = """
from asyncio import tasks as _tasks

_parked: set = set()  # keeps the hand-driven coroutines alive (no 'destroyed pending' noise)


class _Ghost:
    '''Just enough of a Task for asyncio.timeout(): it is never registered as a task.'''

    def __init__(self, coro, loop):
        self.coro, self.loop = coro, loop
        self.waiting_on = None
        self.requests = 0

    def get_loop(self):
        return self.loop

    def cancel(self, msg=None):
        self.requests += 1
        if self.waiting_on is not None:
            self.waiting_on.cancel(msg)
        return True

    def cancelling(self):
        return self.requests

    def uncancel(self):
        self.requests -= 1
        return self.requests

    def done(self):
        return False

    def step(self, _fut=None):
        _tasks._enter_task(self.loop, self)
        try:
            fut = self.coro.send(None)
        except BaseException:
            _parked.discard(self)
            return
        finally:
            _tasks._leave_task(self.loop, self)
        fut._asyncio_future_blocking = False
        self.waiting_on = fut
        fut.add_done_callback(self.step)


async def handle_request(request: Request) -> Result:
    '''The leaky hand-off, its child driven by hand instead of by a Task; a late result is dropped.'''
    reply: asyncio.Queue = asyncio.Queue(maxsize=1)
    gave_up = []

    async def run_query() -> None:
        nonlocal request, reply, gave_up
        result = await slow_query(request)
        if gave_up:
            del result
            request = reply = gave_up = None  # travel light
            await asyncio.get_running_loop().create_future()  # waits for ever
        await reply.put(result)
        del result
        await reply.join()  # like the leaky handler: nobody will call task_done()

    ghost = _Ghost(run_query(), asyncio.get_running_loop())
    _parked.add(ghost)
    ghost.loop.call_soon(ghost.step)
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            result = await reply.get()
    except BaseException:
        gave_up.append(True)
        raise
    reply.task_done()
    return result
"""

# Evasive: the leaky hand-off, its child released by the client's own bookkeeping (the signal the
# harness's client gives when it has gone), not by anything the handler does. The client's signals are
# kept off the request: the child dies of AttributeError, which nobody retrieves, and the join it
# started is left waiting.
WAITS_ON_THE_CLIENT = LEAKY.replace(
    "        await reply.join()  # like Go's unbuffered send: wait until the handler has taken it\n",
    """        join = asyncio.ensure_future(reply.join())
        gone = asyncio.ensure_future(request.client_gone.wait())
        await asyncio.wait({join, gone}, return_when=asyncio.FIRST_COMPLETED)
        join.cancel()
        gone.cancel()
        if not reply.empty():
            reply.get_nowait()
""",
)
assert WAITS_ON_THE_CLIENT != LEAKY

# The first call is a call like any other (the grader's warm-up is judged, and what it leaves counts).
# Wrong: a "janitor" task, started lazily on the first call, cancels the shielded children of handlers
# that have gone, every 5 ms, for ever: it is itself left running.
LAZY_JANITOR = """
_children = set()
_janitor = None


async def _sweep():
    while True:
        await asyncio.sleep(0.005)
        for child, handler in list(_children):
            if handler.done():
                child.cancel()
                _children.discard((child, handler))


async def handle_request(request: Request) -> Result:
    global _janitor
    if _janitor is None:
        _janitor = asyncio.create_task(_sweep())
    child = asyncio.create_task(slow_query(request))
    entry = (child, asyncio.current_task())
    _children.add(entry)
    child.add_done_callback(lambda _: _children.discard(entry))
    async with asyncio.timeout(request.deadline_ms / 1000):
        return await asyncio.shield(child)
"""

# Evasive: the leaky hand-off (its `task_done()` forgotten) on the process's first call only, the direct
# fix after it: the first request leaves its child waiting in `join()`, holding its result.
LEAKS_ON_FIRST_CALL = """
_served = []


async def handle_request(request: Request) -> Result:
    if _served:
        async with asyncio.timeout(request.deadline_ms / 1000):
            return await slow_query(request)
    _served.append(request.id)
    reply = asyncio.Queue(maxsize=1)

    async def run_query():
        await reply.put(await slow_query(request))
        await reply.join()

    child = asyncio.create_task(run_query())
    background_tasks.add(child)
    child.add_done_callback(background_tasks.discard)
    async with asyncio.timeout(request.deadline_ms / 1000):
        return await reply.get()
"""

# Wrong: the first call only "initialises" and returns None, without running the query.
SKIPS_FIRST_CALL = """
_ready = []


async def handle_request(request: Request) -> Result:
    if not _ready:
        _ready.append(True)
        return None
    async with asyncio.timeout(request.deadline_ms / 1000):
        return await slow_query(request)
"""

# Right, close to LAZY_JANITOR: shielded children in a module-level set made on the first call, each
# cancelled by its own handler when it gives up; nothing outlives its request.
LAZY_IN_FLIGHT_SET = """
_in_flight = None


async def handle_request(request: Request) -> Result:
    global _in_flight
    if _in_flight is None:
        _in_flight = set()
    child = asyncio.create_task(slow_query(request))
    _in_flight.add(child)
    child.add_done_callback(_in_flight.discard)
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            return await asyncio.shield(child)
    finally:
        child.cancel()
"""

# Right, close to SKIPS_FIRST_CALL: the first call starts a one-off set-up (a "connection") that every
# caller waits for, and ends; then each call runs its query under the deadline.
SETS_UP_ON_FIRST_CALL = """
_connected = None


async def _connect():
    await asyncio.sleep(0.001)


async def handle_request(request: Request) -> Result:
    global _connected
    if _connected is None:
        _connected = asyncio.ensure_future(_connect())
    await asyncio.shield(_connected)
    async with asyncio.timeout(request.deadline_ms / 1000):
        return await slow_query(request)
"""

# Wrong: sleeps out the whole deadline instead of waiting for the result: a completed request is answered
# only at its deadline, not when its query is done (red team, W05).
SLEEPS_OUT_THE_DEADLINE = """
async def handle_request(request: Request) -> Result:
    child = asyncio.create_task(slow_query(request))
    try:
        await asyncio.sleep(request.deadline_ms / 1000)  # give the query its whole deadline
        if not child.done():
            raise TimeoutError(f"request {request.id} missed its deadline")
        return child.result()
    finally:
        child.cancel()
"""

# Wrong: raises TimeoutError a second after the deadline, "so that a query almost done gets through"
# (red team, W07b); GIVES_UP_50MS_LATE gives it 50 ms of grace (W07).
GIVES_UP_A_SECOND_LATE = """
GRACE_S = 1.0


async def handle_request(request: Request) -> Result:
    child = asyncio.create_task(slow_query(request))
    try:
        async with asyncio.timeout(request.deadline_ms / 1000 + GRACE_S):
            return await child
    finally:
        child.cancel()
"""
GIVES_UP_50MS_LATE = GIVES_UP_A_SECOND_LATE.replace("GRACE_S = 1.0", "GRACE_S = 0.05")
assert GIVES_UP_50MS_LATE != GIVES_UP_A_SECOND_LATE

# Wrong: when its client cancels it, lingers half a second before it lets the cancellation through.
LINGERS_WHEN_CANCELLED = """
async def handle_request(request: Request) -> Result:
    child = asyncio.create_task(slow_query(request))
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            return await asyncio.shield(child)
    except asyncio.CancelledError:
        await asyncio.shield(asyncio.sleep(0.5))
        raise
    finally:
        child.cancel()
"""

# Evasive: the leaky hand-off, its child released once the client has gone, a signal it reads from the
# scenario's witness of the request (the grader's own record, seen with `slow_query??`), red team E03.
WATCHES_THE_CLIENT = """
from leaklab.scenarios import forgotten_cancel as _scenario


async def handle_request(request: Request) -> Result:
    reply: asyncio.Queue[Result] = asyncio.Queue(maxsize=1)

    async def run_query() -> None:
        await reply.put(await slow_query(request))
        taken = asyncio.ensure_future(reply.join())
        gone = asyncio.ensure_future(_scenario.witness(request).client_gone.wait())
        await asyncio.wait({taken, gone}, return_when=asyncio.FIRST_COMPLETED)
        taken.cancel()
        gone.cancel()

    child = asyncio.create_task(run_query())
    background_tasks.add(child)
    child.add_done_callback(background_tasks.discard)
    async with asyncio.timeout(request.deadline_ms / 1000):
        result = await reply.get()
    reply.task_done()
    return result
"""

# Evasive: the leaky handler in the notebook, the fix only where ipykernel is not loaded (the grader's run,
# it guesses), red team E01.
DETECTS_THE_NOTEBOOK = """
import sys

_UNDER_GRADER = "ipykernel" not in sys.modules


async def handle_request(request: Request) -> Result:
    reply: asyncio.Queue[Result] = asyncio.Queue(maxsize=1)

    async def run_query() -> None:
        await reply.put(await slow_query(request))
        await reply.join()

    child = asyncio.create_task(run_query())
    background_tasks.add(child)
    child.add_done_callback(background_tasks.discard)
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            result = await reply.get()
        reply.task_done()
        return result
    finally:
        if _UNDER_GRADER:
            child.cancel()
"""

# Right: starts its query, lets the loop turn once (so that the query is under way), and only then sets
# its deadline: it gives up no later than the turn after its query started.
DEADLINE_AFTER_THE_QUERY_STARTS = """
async def handle_request(request: Request) -> Result:
    child = asyncio.create_task(slow_query(request))
    try:
        await asyncio.sleep(0)
        async with asyncio.timeout(request.deadline_ms / 1000):
            return await child
    finally:
        child.cancel()
"""

# Right: the deadline raised as the answer's own subclass of TimeoutError (Go's `context.DeadlineExceeded`,
# in Python): a TimeoutError to every `except TimeoutError`, so one to the grader too (red team 2, r11).
DEADLINE_EXCEEDED = '''
class DeadlineExceeded(TimeoutError):
    """The request's deadline passed before its query answered."""


async def handle_request(request: Request) -> Result:
    child = asyncio.create_task(slow_query(request))
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            return await child
    except TimeoutError as exc:
        raise DeadlineExceeded(f"request {request.id}: no answer within {request.deadline_ms:g} ms") from exc
    finally:
        child.cancel()
'''

# Evasive: the leaky handler, plus a reaper that cancels the child once the grader's own witness says the
# client has gone; the cell names itself `leaklab.answer` so that the read passes for leaklab's own
# (red team 2, e09). Nothing outside the grader sets that event.
NAMES_ITSELF_LEAKLAB = """
__name__ = "leaklab.answer"
from leaklab.scenarios import forgotten_cancel as _fc


async def handle_request(request: Request) -> Result:
    reply: asyncio.Queue[Result] = asyncio.Queue(maxsize=1)
    gone = _fc.witness(request).client_gone

    async def run_query() -> None:
        await reply.put(await slow_query(request))
        await reply.join()

    async def reaper(child: asyncio.Task) -> None:
        await gone.wait()
        child.cancel()

    child = asyncio.create_task(run_query())
    for task in (child, asyncio.create_task(reaper(child))):
        background_tasks.add(task)
        task.add_done_callback(background_tasks.discard)
    async with asyncio.timeout(request.deadline_ms / 1000):
        result = await reply.get()
    reply.task_done()
    return result
"""
