"""Answer cells for notebook 03, right and wrong, as a learner might write them."""

import inspect

from leaklab.scenarios.hung_call import leaky_fetch

# The lesson's leaky call itself, as a learner who changed nothing would submit it.
LEAKY = inspect.getsource(leaky_fetch).replace("leaky_fetch", "fetch")

# A fix: the deadline is on the call itself, and the connection is closed however the call ends.
FIXED = """
async def fetch(request: Request, address: tuple[str, int]) -> str:
    async with asyncio.timeout(request.deadline_ms / 1000):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(request.line())
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
    return line.decode().strip()
"""

# Right, bound to `fetch` by a logging decorator without functools.wraps (the object's `__name__` is
# `logged`), and as a lambda: the grader looks the answer up by the name the task gives it.
DECORATED_NO_WRAPS = (
    """
import logging


def logging_calls(call):
    async def logged(request, address):
        logging.getLogger("fetch").debug("asking %r", request)
        return await call(request, address)

    return logged


"""
    + FIXED.replace("async def fetch(", "async def _fetch(")
    + "\n\nfetch = logging_calls(_fetch)\n"
)
LAMBDA = (
    FIXED.replace("async def fetch(", "async def _fetch(")
    + "\n\nfetch = lambda request, address: _fetch(request, address)\n"
)

# Wrong: asks a call that hangs three times, each with the whole deadline, before it gives up: leaves
# nothing open, but keeps its caller three deadlines instead of one (within the grader's margin for a
# loaded machine: caught because the service counts the asks, not by the clock).
RETRIES_A_HUNG_CALL = FIXED.replace(
    "async def fetch(request: Request, address: tuple[str, int]) -> str:\n",
    "async def fetch(request: Request, address: tuple[str, int]) -> str:\n"
    "    for _ in range(2):\n"
    "        try:\n"
    "            return await ask(request, address)\n"
    "        except TimeoutError:\n"
    "            continue\n"
    "    return await ask(request, address)\n"
    "\n"
    "\n"
    "async def ask(request: Request, address: tuple[str, int]) -> str:\n",
)
assert RETRIES_A_HUNG_CALL != FIXED

# Wrong: closes the connection when the call times out, not when its caller cancels it mid-call.
CLOSES_ON_TIMEOUT_ONLY = """
async def fetch(request: Request, address: tuple[str, int]) -> str:
    reader, writer = await asyncio.open_connection(*address)
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            writer.write(request.line())
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        writer.close()
        raise
    writer.close()
    return line.decode().strip()
"""

# Times out on schedule, but leaves every stuck connection open.
TIMES_OUT_BUT_KEEPS_SOCKET = """
async def fetch(request: Request, address: tuple[str, int]) -> str:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(request.line())
    await writer.drain()
    async with asyncio.timeout(request.deadline_ms / 1000):
        line = await reader.readline()
    writer.close()
    return line.decode().strip()
"""

# The Python twist: a timeout around a thread, not around the call. The caller is free; the thread is not.
WAIT_FOR_THREAD = """
def blocking(request, address):
    with socket.create_connection(address) as connection:
        connection.sendall(request.line())
        return connection.recv(PAYLOAD_BYTES).decode().strip()


async def fetch(request: Request, address: tuple[str, int]) -> str:
    return await asyncio.wait_for(asyncio.to_thread(blocking, request, address), request.deadline_ms / 1000)
"""

# Wrong: the timeout on the socket itself, in a thread that ends on time; but a caller that cancels frees only
# itself: the thread still waits in recv, its socket open, after the cancelled call has ended (until the
# socket's timeout). The task says nothing stays open once a call has ended, a cancellation one of its ways.
SOCKET_TIMEOUT = """
def blocking(request, address, timeout):
    with socket.create_connection(address, timeout=timeout) as connection:
        connection.sendall(request.line())
        return connection.recv(PAYLOAD_BYTES).decode().strip()


async def fetch(request: Request, address: tuple[str, int]) -> str:
    try:
        return await asyncio.to_thread(blocking, request, address, request.deadline_ms / 1000)
    except socket.timeout:
        raise TimeoutError from None
"""

# Wrong (an outside reviewer's, 9/9 while only descriptors were counted): the socket timeout in a thread, and
# the socket closed from the event loop in `finally`, without waiting for the thread: the descriptor is gone
# at once, but the connection stays open (the thread still waits in recv on it) until the socket's timeout.
CLOSES_FROM_THE_LOOP = """
def _ask(sock: socket.socket, request: Request, address: tuple[str, int]) -> str:
    sock.connect(address)
    sock.sendall(request.line())
    answer = bytearray(PAYLOAD_BYTES)
    size = sock.recv_into(answer)  # the socket's timeout ends this at the deadline
    return answer[:size].decode().strip()


async def fetch(request: Request, address: tuple[str, int]) -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(request.deadline_ms / 1000)
    try:
        return await asyncio.to_thread(_ask, sock, request, address)
    finally:
        sock.close()  # closed on every way out, a cancellation included
"""

# Wrong (an outside reviewer's, 9/9 while the service accepted every connection at once): the deadline
# covers the write and the read, not the connect: a call to a service that never accepts hangs for good.
CONNECTS_OUTSIDE_THE_DEADLINE = """
async def fetch(request: Request, address: tuple[str, int]) -> str:
    reader, writer = await asyncio.open_connection(*address)  # connecting is quick on loopback
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            writer.write(request.line())
            await writer.drain()
            line = await reader.readline()
        return line.decode().rstrip("\\n")
    finally:
        writer.close()
"""

# Wrong: keeps its open connections in a registry (to close them all at shutdown), and takes a connection
# out (and closes it) on an answer or a timeout only: a call the service resets (an error) stays in the
# registry, its socket open. The planned burst, the drawn one and the lesson's own burst all have such calls.
CLOSES_UNLESS_IT_FAILS = SOCKET_TIMEOUT.replace(
    """def blocking(request, address, timeout):
    with socket.create_connection(address, timeout=timeout) as connection:
        connection.sendall(request.line())
        return connection.recv(PAYLOAD_BYTES).decode().strip()
""",
    """open_connections = set()


def blocking(request, address, timeout):
    connection = socket.create_connection(address, timeout=timeout)
    open_connections.add(connection)
    connection.sendall(request.line())
    try:
        answer = connection.recv(PAYLOAD_BYTES).decode().strip()
    except socket.timeout:
        open_connections.discard(connection)
        connection.close()
        raise
    open_connections.discard(connection)
    connection.close()
    return answer
""",
)
assert CLOSES_UNLESS_IT_FAILS != SOCKET_TIMEOUT

# A blocking socket in a thread, with the deadline on the socket, that a caller's cancellation reaches: the
# thread watches a flag, and the call waits for it to close its socket before it lets CancelledError through.
THREAD_CLOSES_ON_CANCEL = """
import threading
import time


def blocking(request, address, deadline_s, cancelled):
    with socket.create_connection(address, timeout=deadline_s) as connection:
        connection.settimeout(0.005)
        connection.sendall(request.line())
        answer = bytearray()
        give_up = time.monotonic() + deadline_s
        while not answer.endswith(b"\\n"):
            if cancelled.is_set():
                raise ConnectionAbortedError("the caller went away")
            if time.monotonic() > give_up:
                raise TimeoutError
            try:
                chunk = connection.recv(PAYLOAD_BYTES)
            except socket.timeout:
                continue
            if not chunk:
                break
            answer += chunk
        return answer.decode().strip()


async def fetch(request: Request, address: tuple[str, int]) -> str:
    cancelled = threading.Event()
    call = asyncio.ensure_future(asyncio.to_thread(blocking, request, address, request.deadline_ms / 1000, cancelled))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        cancelled.set()
        await asyncio.gather(call, return_exceptions=True)
        raise
"""

# Wrong: returns "" when the service resets the connection, instead of letting ConnectionResetError through.
SWALLOWS_RESET = """
async def fetch(request: Request, address: tuple[str, int]) -> str:
    writer = None
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            reader, writer = await asyncio.open_connection(*address)
            writer.write(request.line())
            await writer.drain()
            return (await reader.readline()).decode().strip()
    except ConnectionResetError:
        return ""
    finally:
        if writer is not None:
            writer.close()
"""

# Wrong: a timeout of its own (100 ms), whatever request.deadline_ms says: early on a longer deadline.
FIXED_TIMEOUT = FIXED.replace("request.deadline_ms / 1000", "0.1")
assert FIXED_TIMEOUT != FIXED

# Gives up on every call at once: nothing leaks, nothing is answered.
GIVES_UP_AT_ONCE = """
async def fetch(request: Request, address: tuple[str, int]) -> str:
    raise TimeoutError
"""

STUB = """
async def fetch(request: Request, address: tuple[str, int]) -> str:
    # YOUR CODE HERE
    raise NotImplementedError()
"""

# A made-up answer: never asks the service, and guesses from the key which calls would hang.
MADE_UP = """
async def fetch(request, address):
    if "stuck" in request.key:
        raise TimeoutError
    return request.expected()
"""

# Evasive: asks the service and reads one byte of its reply, then makes the answer up from the key (an
# outside reviewer's, 9/9 while the grader's keys were answered with `value of <key>` alone).
MAKES_UP_AFTER_ONE_BYTE = """
async def fetch(request, address):
    async with asyncio.timeout(request.deadline_ms / 1000):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(request.line())
            await writer.drain()
            if not await reader.read(1):
                raise ConnectionResetError("closed")
            return request.expected()
        finally:
            writer.close()
"""

# Wrong: enforces the deadline only when it is short (under 1 s): a call with a long one hangs for good.
SHORT_DEADLINES_ONLY = FIXED.replace(
    "asyncio.timeout(request.deadline_ms / 1000)",
    "asyncio.timeout(request.deadline_ms / 1000 if request.deadline_ms < 1000 else None)",
)
assert SHORT_DEADLINES_ONLY != FIXED

# Wrong: lets go of the connection instead of closing it (`del`): its finaliser closes it, with a ResourceWarning.
LETS_GO_UNCLOSED = """
async def fetch(request: Request, address: tuple[str, int]) -> str:
    reader, writer = await asyncio.open_connection(*address)
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            writer.write(request.line())
            await writer.drain()
            return (await reader.readline()).decode().strip()
    finally:
        del reader, writer
"""

# Evasive: knows which calls hang (the scenario module in its own process holds the service's secret, which
# decides it), never asks the service for those and only waits out their deadlines; asks for the rest.
# The service counts the asks: a fetch that asked for none of the calls that hang was not waiting on them.
GUESSES_WHICH_HANG = """
import sys as _sys

async def fetch(request: Request, address: tuple[str, int]) -> str:
    scenario = _sys.modules["leaklab.scenarios.hung_call"]
    secret = scenario._secrets.get(tuple(address), "")
    if not scenario.resets_connection(request.key) and scenario.never_answered(secret, request.key):
        await asyncio.sleep(request.deadline_ms / 1000)
        raise TimeoutError(request.key)
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request.line())
        await writer.drain()
        return (await reader.readline()).decode().strip()
    finally:
        writer.close()
"""

# Evasive: the same, with the service's rule for which keys hang written out from leaklab's source instead of
# asking `never_answered` (which the run notes as a read of the grader's records: tampered).
GUESSES_BY_THE_SECRET = GUESSES_WHICH_HANG.replace(
    "scenario.never_answered(secret, request.key)",
    "__import__('hashlib').sha256(f'{secret}:{request.key}'.encode()).digest()[0] % 3 == 0",
)
assert GUESSES_BY_THE_SECRET != GUESSES_WHICH_HANG

# Evasive (an outside reviewer's): took the deadline for the tell, as the grader once gave every call it
# answers 2000 ms: any other deadline "will hang", so it only waits that out, never asking.
DEADLINE_ORACLE = GUESSES_WHICH_HANG.replace(
    """    scenario = _sys.modules["leaklab.scenarios.hung_call"]
    secret = scenario._secrets.get(tuple(address), "")
    if not scenario.resets_connection(request.key) and scenario.never_answered(secret, request.key):""",
    "    if request.deadline_ms != 2000.0:",
)
assert DEADLINE_ORACLE != GUESSES_WHICH_HANG

# Right: the deadline raised as the answer's own subclass of TimeoutError (Go's `context.DeadlineExceeded`):
# still a TimeoutError to every `except TimeoutError` (red team 2, r11).
DEADLINE_EXCEEDED = '''
class DeadlineExceeded(TimeoutError):
    """context.DeadlineExceeded, in Python: still a TimeoutError."""


async def fetch(request: Request, address: tuple[str, int]) -> str:
    try:
        async with asyncio.timeout(request.deadline_ms / 1000):
            reader, writer = await asyncio.open_connection(*address)
            try:
                writer.write(request.line())
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except TimeoutError as exc:
        raise DeadlineExceeded(f"{request.key}: no answer within {request.deadline_ms:.0f} ms") from exc
    return line.decode().rstrip("\\n")
'''


# Wrong: the deadline enforced by a watchdog task per call that is never cancelled when the call ends
# before it: a task the call started outlives it, until the deadline (red team 2, w13).
WATCHDOG_TASK_LEFT = """
async def _watchdog(call, seconds, fired):
    await asyncio.sleep(seconds)
    if not call.done():
        fired.append(True)
        call.cancel()


async def fetch(request: Request, address: tuple[str, int]) -> str:
    fired, me = [], asyncio.current_task()
    asyncio.get_running_loop().create_task(_watchdog(me, request.deadline_ms / 1000, fired))
    writer = None
    try:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(request.line())
        await writer.drain()
        return (await reader.readline()).decode().rstrip("\\n")
    except asyncio.CancelledError:
        if fired:
            me.uncancel()
            raise TimeoutError(f"no answer within {request.deadline_ms} ms") from None
        raise
    finally:
        if writer is not None:
            writer.close()
"""

# Wrong: the same with a `threading.Timer` per call, never cancelled: a thread the call started outlives it
# (red team 2, w14).
TIMER_LEFT = """
import threading


async def fetch(request: Request, address: tuple[str, int]) -> str:
    loop, me, fired = asyncio.get_running_loop(), asyncio.current_task(), threading.Event()

    def expire():
        fired.set()
        loop.call_soon_threadsafe(lambda: me.done() or me.cancel())

    threading.Timer(request.deadline_ms / 1000, expire).start()
    writer = None
    try:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(request.line())
        await writer.drain()
        return (await reader.readline()).decode().rstrip("\\n")
    except asyncio.CancelledError:
        if fired.is_set() and me.uncancel() == 0:
            raise TimeoutError from None
        raise
    finally:
        if writer is not None:
            writer.close()
"""
