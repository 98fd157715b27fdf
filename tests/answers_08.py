"""Answer cells for notebook 08, right and wrong, as a learner might write them."""

# The notebook's fix: the flusher's back-off waits on the stop signal and stop() joins it; a report
# awaits its query under the deadline, without a child task; a lookup has a deadline and closes its
# connection however it ends; a batch's workers get a "no more jobs" each and are joined.
FIXED = """
class Service(LeakyService):
    def start(self) -> None:
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush, args=(self._stop,), name="flusher", daemon=True)
        self._flusher.start()

    def stop(self) -> None:
        self._stop.set()
        self._flusher.join()

    def _flush(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                event = self.events.get(timeout=0.01)
            except queue.Empty:
                continue
            while True:
                try:
                    self.sink.call(event)
                    break
                except DependencyError:
                    if stop.wait(self.backoff_s):
                        self.events.put(event)
                        return

    async def report(self, request: Request) -> Result:
        async with asyncio.timeout(request.deadline_ms / 1000):
            return await slow_query(request)

    async def lookup(self, lookup: Lookup) -> str:
        async with asyncio.timeout(lookup.deadline_ms / 1000):
            reader, writer = await asyncio.open_connection(*self.address)
            try:
                writer.write(lookup.line())
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
        return line.decode().strip()

    def batch(self, jobs: list[int]) -> list[int]:
        todo = queue.Queue()
        results = {}

        def worker() -> None:
            while (item := todo.get()) is not None:
                index, job = item
                results[index] = handle(job)

        workers = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
        for thread in workers:
            thread.start()
        for item in enumerate(jobs):
            todo.put(item)
        for _ in workers:
            todo.put(None)
        for thread in workers:
            thread.join()
        return [results[index] for index in range(len(jobs))]
"""

# Correct too, written differently: a TaskGroup for the report's child, wait_for and `async with` on the
# connection, and one pool of workers for the service's whole life, started by start() and joined by stop().
OTHER_FIX = """
from concurrent.futures import ThreadPoolExecutor


class Service(LeakyService):
    def start(self) -> None:
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=4)
        self._flusher = threading.Thread(target=self._flush, daemon=True)
        self._flusher.start()

    def stop(self) -> None:
        self._stop.set()
        self._flusher.join(timeout=5)
        self._pool.shutdown(wait=True)

    def _flush(self) -> None:
        pending = None
        while not self._stop.is_set():
            if pending is None:
                try:
                    pending = self.events.get(timeout=0.01)
                except queue.Empty:
                    continue
            try:
                self.sink.call(pending)
                pending = None
            except DependencyError:
                self._stop.wait(self.backoff_s)
        if pending is not None:
            self.events.put(pending)

    async def report(self, request: Request) -> Result:
        async with asyncio.timeout(request.deadline_ms / 1000):
            async with asyncio.TaskGroup() as group:
                child = group.create_task(slow_query(request))
        return child.result()

    async def lookup(self, lookup: Lookup) -> str:
        async def ask() -> str:
            reader, writer = await asyncio.open_connection(*self.address)
            try:
                writer.write(lookup.line())
                await writer.drain()
                return (await reader.readline()).decode().strip()
            finally:
                writer.close()

        return await asyncio.wait_for(ask(), lookup.deadline_ms / 1000)

    def batch(self, jobs: list[int]) -> list[int]:
        return list(self._pool.map(handle, jobs))
"""

_FLUSHER = FIXED[FIXED.index("    def start(self)") : FIXED.index("    async def report")]
_BATCH = FIXED[FIXED.index("    def batch(self") :]

# Three sources of four fixed: the flusher is still the leaky one (its retry loop sleeps through the stop
# signal, and stop() does not wait). Loses the events' points and the flat week's.
THREE_OF_FOUR = FIXED.replace(_FLUSHER, "")
assert THREE_OF_FOUR != FIXED

# Only the asyncio sources fixed (reports and lookups); the thread sources still leak.
TASKS_ONLY = FIXED.replace(_FLUSHER, "").replace(_BATCH, "")
assert TASKS_ONLY != FIXED and "def batch" not in TASKS_ONLY

# No leak left, but by dropping work: the lookup never asks the key-value service (it gives up at once),
# and the batch computes the squares itself instead of calling handle(). Loses the lookups', the batches'
# and the week's points.
DROPS_WORK = FIXED.replace(
    FIXED[FIXED.index("    async def lookup") :],
    """    async def lookup(self, lookup: Lookup) -> str:
        raise TimeoutError("the key-value service is too slow: not asked")

    def batch(self, jobs: list[int]) -> list[int]:
        return [job * job for job in jobs]
""",
)
assert DROPS_WORK != FIXED

# A made-up lookup: the key-value service's answer written without asking it, with a timeout for show.
MADE_UP_LOOKUP = FIXED.replace(
    FIXED[FIXED.index("    async def lookup") : FIXED.index("    def batch")],
    """    async def lookup(self, lookup: Lookup) -> str:
        return f"value of {lookup.key}"

""",
)
assert MADE_UP_LOOKUP != FIXED and "def batch" in MADE_UP_LOOKUP

# stop() joins the flusher, but the retry loop is still deaf: while the sink is down, stop() never returns.
JOINS_BUT_DEAF = FIXED.replace(
    "                    if stop.wait(self.backoff_s):\n                        self.events.put(event)\n"
    "                        return\n",
    "                    time.sleep(self.backoff_s)\n",
)
assert JOINS_BUT_DEAF != FIXED

# Correct too, other idioms again: the flusher keeps the event in hand through a retry loop that stops at the
# signal and puts it back after; the report keeps a child task but cancels and awaits it however it ends; the
# lookup uses wait_for and wait_closed; a batch's jobs are split over four threads by position, all joined.
ALT_IDIOMS = """
class Service(LeakyService):
    def start(self):
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._flush, args=(self._stop,))
        self._t.start()

    def stop(self):
        self._stop.set()
        self._t.join()

    def _flush(self, stop):
        while not stop.is_set():
            try:
                event = self.events.get(timeout=0.01)
            except queue.Empty:
                continue
            delivered = False
            while not delivered and not stop.is_set():
                try:
                    self.sink.call(event)
                    delivered = True
                except DependencyError:
                    stop.wait(self.backoff_s)
            if not delivered:
                self.events.put(event)

    async def report(self, request):
        child = asyncio.ensure_future(slow_query(request))
        try:
            return await asyncio.wait_for(asyncio.shield(child), request.deadline_ms / 1000)
        finally:
            if not child.done():
                child.cancel()
                try:
                    await child
                except asyncio.CancelledError:
                    pass

    async def lookup(self, lookup):
        async def ask():
            reader, writer = await asyncio.open_connection(*self.address)
            try:
                writer.write(lookup.line())
                await writer.drain()
                return await reader.readline()
            finally:
                writer.close()
                try:
                    await writer.wait_closed()
                except Exception:
                    pass

        line = await asyncio.wait_for(ask(), lookup.deadline_ms / 1000)
        return line.decode().strip()

    def batch(self, jobs):
        results = [None] * len(jobs)

        def work(k):
            for i in range(k, len(jobs), 4):
                results[i] = handle(jobs[i])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(min(4, len(jobs)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results
"""

# The flusher drops the event it holds when it is stopped during the outage (it returns without putting it
# back on self.events): events are lost. Loses the events' points and the week's.
DROPS_EVENT_ON_STOP = FIXED.replace("                        self.events.put(event)\n", "")
assert DROPS_EVENT_ON_STOP != FIXED

# stop() signals the flusher but does not join it: it returns while the flusher is still running (it ends a
# moment later, on its own). Loses the events' leave-nothing and the week's.
STOP_NO_JOIN = FIXED.replace("        self._flusher.join()\n", "")
assert STOP_NO_JOIN != FIXED

# The batch's workers get their "no more jobs" but are never joined: batch() spins until every result is in
# and returns while its workers are still running. Loses the batches' leave-nothing and the week's.
BATCH_NO_JOIN = FIXED.replace(
    "        for thread in workers:\n            thread.join()\n",
    "        while len(results) < len(jobs):\n            time.sleep(0.0005)\n",
)
assert BATCH_NO_JOIN != FIXED

# stop() looks at the flusher once instead of waiting for it: `is_alive()` on the way out is not a join.
STOP_LOOKS_ONCE = FIXED.replace(
    "        self._flusher.join()\n", "        if self._flusher.is_alive():\n            print('still flushing')\n"
)
assert STOP_LOOKS_ONCE != FIXED

# batch() collects its results, then glances at its workers once each: not a wait either.
BATCH_LOOKS_ONCE = FIXED.replace(
    "        for thread in workers:\n            thread.join()\n",
    "        while len(results) < len(jobs):\n            time.sleep(0.0005)\n"
    "        busy = [thread for thread in workers if thread.is_alive()]\n",
)
assert BATCH_LOOKS_ONCE != FIXED

# Right, written differently: waits for its threads by polling `is_alive()` until each says False, and
# joins the flusher with a timeout it never reaches.
POLLS_UNTIL_ENDED = FIXED.replace(
    "        for thread in workers:\n            thread.join()\n",
    "        while any(thread.is_alive() for thread in workers):\n            time.sleep(0.001)\n",
).replace("        self._flusher.join()\n", "        self._flusher.join(timeout=30)\n")
assert POLLS_UNTIL_ENDED.count("is_alive") == 1 and "join(timeout=30)" in POLLS_UNTIL_ENDED

# Deadlines ignored: a fixed 0.2 s timeout on every lookup, 0.3 s on every report. A lookup's TimeoutError
# comes before its deadline. Loses the lookups' points and the week's.
FIXED_TIMEOUTS = FIXED.replace("asyncio.timeout(lookup.deadline_ms / 1000)", "asyncio.timeout(0.2)").replace(
    "asyncio.timeout(request.deadline_ms / 1000)", "asyncio.timeout(0.3)"
)
assert FIXED_TIMEOUTS.count("asyncio.timeout(0.") == 2

# A cheat: guess from the deadline which lookups will never be answered; ask (so that the key counts as
# asked) but never read the reply, and make the answer up. Loses the lookups' points and the week's.
CHEAT_DEADLINE_TELLS = FIXED.replace(
    FIXED[FIXED.index("    async def lookup") : FIXED.index("    def batch")],
    """    async def lookup(self, lookup: Lookup) -> str:
        reader, writer = await asyncio.open_connection(*self.address)
        writer.write(lookup.line())
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        if lookup.deadline_ms < 1000:
            raise TimeoutError()
        return f"value of {lookup.key}"

""",
)
assert CHEAT_DEADLINE_TELLS != FIXED

# The exercise as handed out: every method a stub.
STUB = """
class Service(LeakyService):
    def start(self) -> None:
        # YOUR CODE HERE
        raise NotImplementedError()

    def stop(self) -> None:
        # YOUR CODE HERE
        raise NotImplementedError()

    def _flush(self, stop: threading.Event) -> None:
        # YOUR CODE HERE
        raise NotImplementedError()

    async def report(self, request: Request) -> Result:
        # YOUR CODE HERE
        raise NotImplementedError()

    async def lookup(self, lookup: Lookup) -> str:
        # YOUR CODE HERE
        raise NotImplementedError()

    def batch(self, jobs: list[int]) -> list[int]:
        # YOUR CODE HERE
        raise NotImplementedError()
"""

# The leaky service itself, as a learner who overrode nothing would submit it.
LEAKY = """
class Service(LeakyService):
    pass
"""

# --- the diagnosis: what the leaky week's dump and memray show, named before the code is shown ---------

# The notebook's diagnosis: the service's four groups, biggest first, and the one holding the most.
DIAGNOSIS = 'DUMP_GROUPS = ["worker", "run_query", "_flush", "lookup"]\nHOLDS_MOST = "worker"\n'

# Right too: qualified names as Python spells them, in a tuple.
DIAGNOSIS_QUALIFIED = (
    'DUMP_GROUPS = ("LeakyService.batch.<locals>.worker", "LeakyService.report.<locals>.run_query", '
    '"LeakyService._flush", "LeakyService.lookup")\nHOLDS_MOST = "LeakyService.batch.<locals>.worker"\n'
)

# Wrong: the innermost frames of each group, the standard library's, not the service's.
DIAGNOSIS_LIBRARY_FRAMES = 'DUMP_GROUPS = ["wait", "wait", "_flush", "_wait_for_data"]\nHOLDS_MOST = "wait"\n'

# Wrong: the right four, not biggest first (the order the service's code defines them in).
DIAGNOSIS_UNORDERED = 'DUMP_GROUPS = ["_flush", "run_query", "lookup", "worker"]\nHOLDS_MOST = "worker"\n'

# Wrong: the methods that start them, not where they wait; and the working set named as the holder.
DIAGNOSIS_CALLERS = 'DUMP_GROUPS = ["batch", "report", "start", "lookup"]\nHOLDS_MOST = "__init__"\n'

# Wrong: the groups right, the biggest holder guessed from the count of the second group.
DIAGNOSIS_WRONG_HOLDER = 'DUMP_GROUPS = ["worker", "run_query", "_flush", "lookup"]\nHOLDS_MOST = "run_query"\n'

DIAGNOSIS_STUB = "# YOUR CODE HERE\nraise NotImplementedError()\n"

# Wrong: the lookup's deadline is right, but the connection is closed only when an answer came: every lookup
# that times out leaves its socket open (the event loop still watches it), though every answer is right.
CLOSES_ONLY_WHEN_ANSWERED = FIXED.replace(
    """            try:
                writer.write(lookup.line())
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
""",
    """            writer.write(lookup.line())
            await writer.drain()
            line = await reader.readline()
            writer.close()
""",
)
assert CLOSES_ONLY_WHEN_ANSWERED != FIXED

# Wrong (review 4): the connection is closed once answered and at the deadline, not when the client cancels
# the lookup first ("closed however it ends").
CLOSES_UNLESS_CANCELLED = FIXED.replace(
    """    async def lookup(self, lookup: Lookup) -> str:
        async with asyncio.timeout(lookup.deadline_ms / 1000):
            reader, writer = await asyncio.open_connection(*self.address)
            try:
                writer.write(lookup.line())
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
        return line.decode().strip()
""",
    """    async def lookup(self, lookup: Lookup) -> str:
        writer = None
        try:
            async with asyncio.timeout(lookup.deadline_ms / 1000):
                reader, writer = await asyncio.open_connection(*self.address)
                writer.write(lookup.line())
                await writer.drain()
                line = await reader.readline()
        except TimeoutError:
            if writer is not None:
                writer.close()
            raise
        writer.close()
        return line.decode().strip()
""",
)
assert CLOSES_UNLESS_CANCELLED != FIXED

_REPORT = FIXED[FIXED.index("    async def report") : FIXED.index("    async def lookup")]

# Wrong: lesson 01's hand-off kept, its child cancelled only on TimeoutError: when the client cancels the
# handler, the child stays stuck in reply.join() for good. Loses the reports' leave-nothing and the week's.
CANCELS_ONLY_ON_TIMEOUT = FIXED.replace(
    _REPORT,
    """    async def report(self, request: Request) -> Result:
        reply = asyncio.Queue(maxsize=1)

        async def run_query() -> None:
            await reply.put(await slow_query(request))
            await reply.join()

        child = asyncio.create_task(run_query())
        self.background.add(child)
        child.add_done_callback(self.background.discard)
        try:
            async with asyncio.timeout(request.deadline_ms / 1000):
                result = await reply.get()
        except TimeoutError:
            child.cancel()
            raise
        reply.task_done()
        return result

""",
)
assert CANCELS_ONLY_ON_TIMEOUT != FIXED

# Evasive: the leaky hand-off, its child taken out of asyncio's registry (and kept in a list), so that
# asyncio.all_tasks() does not see it. Loses the reports' leave-nothing and the week's.
HIDES_REPORT_TASKS = FIXED.replace(
    _REPORT,
    """    async def report(self, request: Request) -> Result:
        reply = asyncio.Queue(maxsize=1)

        async def run_query() -> None:
            await reply.put(await slow_query(request))
            await reply.join()

        child = asyncio.get_running_loop().create_task(run_query())
        import asyncio.tasks as registry

        registry._all_tasks.discard(child)
        self._kept = getattr(self, "_kept", [])
        self._kept.append(child)
        async with asyncio.timeout(request.deadline_ms / 1000):
            result = await reply.get()
        reply.task_done()
        return result

""",
)
assert HIDES_REPORT_TASKS != FIXED

# Evasive: batch() joins a launcher thread that starts the four workers; the workers end on their own once
# idle (0.3 s), after batch() and often after the next stop() have returned. Loses the batches'
# leave-nothing and the week's.
LAUNCHER_BATCH = FIXED.replace(
    _BATCH,
    """    def batch(self, jobs: list[int]) -> list[int]:
        todo = queue.Queue()
        results = [None] * len(jobs)
        finished = threading.Semaphore(0)

        def worker() -> None:
            while True:
                try:
                    index, job = todo.get(timeout=0.3)
                except queue.Empty:
                    return
                results[index] = handle(job)
                finished.release()

        def launcher() -> None:
            for _ in range(4):
                threading.Thread(target=worker, daemon=True).start()

        thread = threading.Thread(target=launcher)
        thread.start()
        thread.join()
        for item in enumerate(jobs):
            todo.put(item)
        for _ in jobs:
            finished.acquire()
        return results
""",
)
assert LAUNCHER_BATCH != FIXED

# Right, written differently: the report's query in a child task under shield(), cancelled when the deadline
# passes; a client's cancel leaves the child to end with its query (it hands nothing over, so it cannot hang).
SHIELDED_CHILD = FIXED.replace(
    _REPORT,
    """    async def report(self, request: Request) -> Result:
        child = asyncio.create_task(slow_query(request))
        try:
            return await asyncio.wait_for(asyncio.shield(child), request.deadline_ms / 1000)
        except TimeoutError:
            child.cancel()
            raise

""",
)
assert SHIELDED_CHILD != FIXED

# Right too: the batch's jobs done one after another in batch()'s own thread; no thread at all.
SERIAL_BATCH = FIXED.replace(
    _BATCH,
    """    def batch(self, jobs: list[int]) -> list[int]:
        return [handle(job) for job in jobs]
""",
)
assert SERIAL_BATCH != FIXED

_LOOKUP = FIXED[FIXED.index("    async def lookup") : FIXED.index("    def batch")]

# Right too: the lookup a blocking socket in asyncio.to_thread, its socket timeout at the deadline, closed by
# `with`. The default executor's workers stay, idle, after the calls: a bounded pool, not a leftover.
TO_THREAD_SOCKET = FIXED.replace(
    _LOOKUP,
    """    async def lookup(self, lookup: Lookup) -> str:
        import socket

        deadline = time.monotonic() + lookup.deadline_ms / 1000

        def ask() -> str:
            with socket.create_connection(self.address, timeout=lookup.deadline_ms / 1000) as conn:
                conn.sendall(lookup.line())
                data = b""
                while not data.endswith(b"\\n"):
                    conn.settimeout(max(0.001, deadline - time.monotonic()))
                    if not (chunk := conn.recv(4096)):
                        break
                    data += chunk
                return data.decode().strip()

        return await asyncio.to_thread(ask)

""",
)
assert TO_THREAD_SOCKET != FIXED

# Wrong: the same blocking socket with no timeout, only the handler under a deadline: at the deadline the
# handler gives up, but the executor's thread stays in recv() with the socket open (and once the week's have
# filled the executor, later lookups wait for a free thread). Loses the lookups' leave-nothing and the week's.
TO_THREAD_NO_SOCKET_TIMEOUT = (
    TO_THREAD_SOCKET.replace(
        "socket.create_connection(self.address, timeout=lookup.deadline_ms / 1000)",
        "socket.create_connection(self.address)",
    )
    .replace("                    conn.settimeout(max(0.001, deadline - time.monotonic()))\n", "")
    .replace(
        "        return await asyncio.to_thread(ask)",
        "        async with asyncio.timeout(lookup.deadline_ms / 1000):\n"
        "            return await asyncio.to_thread(ask)",
    )
)
assert "settimeout" not in TO_THREAD_NO_SOCKET_TIMEOUT and "timeout=lookup" not in TO_THREAD_NO_SOCKET_TIMEOUT

# Wrong: a thread per job, all joined: a batch of eleven jobs runs on eleven threads, not at most four.
# Loses the batches' leave-nothing and the week's.
THREAD_PER_JOB = FIXED.replace(
    _BATCH,
    """    def batch(self, jobs: list[int]) -> list[int]:
        results = [None] * len(jobs)

        def work(index: int, job: int) -> None:
            results[index] = handle(job)

        threads = [threading.Thread(target=work, args=item) for item in enumerate(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results
""",
)
assert THREAD_PER_JOB != FIXED

# Wrong: a ThreadPoolExecutor at its default size, min(32, cores + 4), not at most four threads (its workers
# all end by the `with`). Loses the batches' leave-nothing and the week's.
DEFAULT_POOL = FIXED.replace(
    _BATCH,
    """    def batch(self, jobs: list[int]) -> list[int]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor() as pool:
            return list(pool.map(handle, jobs))
""",
)
assert DEFAULT_POOL != FIXED

# Right too: four workers fed and read through SimpleQueues (batch() waits for the results in C, where the
# grader's hold on the jobs cannot see it wait), then joined.
SIMPLE_QUEUES_BATCH = FIXED.replace(
    _BATCH,
    """    def batch(self, jobs: list[int]) -> list[int]:
        todo, done = queue.SimpleQueue(), queue.SimpleQueue()

        def worker() -> None:
            while (item := todo.get()) is not None:
                index, job = item
                done.put((index, handle(job)))

        workers = [threading.Thread(target=worker) for _ in range(4)]
        for thread in workers:
            thread.start()
        for item in enumerate(jobs):
            todo.put(item)
        results = dict(done.get() for _ in jobs)
        for thread in workers:
            todo.put(None)
        for thread in workers:
            thread.join()
        return [results[index] for index in range(len(jobs))]
""",
)
assert SIMPLE_QUEUES_BATCH != FIXED

_RETRY_LOOP = "            while True:\n                try:"
_RETRY = (
    "                except DependencyError:\n"
    "                    if stop.wait(self.backoff_s):\n"
    "                        self.events.put(event)\n"
    "                        return\n"
)

# Right, close to the wrong ones below: an event the sink refused goes back on self.events at once, and the
# flusher waits out the back-off (on the stop signal) before it takes the next one: every call to the down
# sink comes a back-off after the last, and no event is lost or delivered twice (their order is not kept).
PUTS_BACK_THEN_WAITS = FIXED.replace(
    _RETRY,
    "                except DependencyError:\n"
    "                    self.events.put(event)  # back in line; the next try comes after the back-off\n"
    "                    if stop.wait(self.backoff_s):\n"
    "                        return\n"
    "                    break\n",
)
assert PUTS_BACK_THEN_WAITS != FIXED

# Right too: a back-off that doubles from self.backoff_s at each refusal in a row (never shorter than it).
DOUBLING_BACKOFF = FIXED.replace(
    _RETRY,
    "                except DependencyError:\n"
    "                    if stop.wait(self.backoff_s * 2 ** min(tries, 3)):\n"
    "                        self.events.put(event)\n"
    "                        return\n"
    "                    tries += 1\n",
).replace(_RETRY_LOOP, "            tries = 0\n" + _RETRY_LOOP)
assert DOUBLING_BACKOFF.count("tries") == 3

# No retry: at the first DependencyError the flusher puts the event back and ends, so nothing is delivered
# until the next start(). Loses the events' points (the sink comes back while the service runs).
GIVES_UP_AT_ONCE = FIXED.replace(
    _RETRY,
    "                except DependencyError:\n"
    "                    self.events.put(event)  # the sink is down: left for the next flusher\n"
    "                    return\n",
)
assert GIVES_UP_AT_ONCE != FIXED

# Retries at once, no back-off: a busy loop on the down sink (it looks at the stop signal each turn).
NO_BACKOFF = FIXED.replace("if stop.wait(self.backoff_s):", "if stop.is_set():")
assert NO_BACKOFF != FIXED

# A back-off of its own, a millisecond, not self.backoff_s.
SHORT_BACKOFF = FIXED.replace("if stop.wait(self.backoff_s):", "if stop.wait(0.001):")
assert SHORT_BACKOFF != FIXED

# Wrong (review of 2026-12-07, w10): the retry loop asks the stop signal before its first try, so an event
# taken from self.events just as stop() is called is neither delivered nor put back: lost.
LOSES_EVENT_TAKEN_AT_STOP = FIXED.replace(
    _RETRY_LOOP, "            while not stop.is_set():\n                try:"
).replace(
    "                        self.events.put(event)\n                        return\n",
    "                        self.events.put(event)  # not delivered: back for the next flusher\n",
)
assert LOSES_EVENT_TAKEN_AT_STOP.count("while not stop.is_set()") == 2 and "return\n" not in LOSES_EVENT_TAKEN_AT_STOP

# Wrong too: the flusher asks the stop signal right after it takes an event, and returns with it in hand.
RETURNS_WITH_TAKEN_EVENT = FIXED.replace(
    "                continue\n            while True:\n",
    "                continue\n            if stop.is_set():\n                return\n            while True:\n",
)
assert RETURNS_WITH_TAKEN_EVENT.count("if stop.is_set():") == 1

# Right: the same order, but an event taken after stop() goes back on self.events, untried.
PUTS_BACK_TAKEN_AFTER_STOP = RETURNS_WITH_TAKEN_EVENT.replace(
    "            if stop.is_set():\n                return\n",
    "            if stop.is_set():\n                self.events.put(event)\n                return\n",
)
assert PUTS_BACK_TAKEN_AFTER_STOP != RETURNS_WITH_TAKEN_EVENT

# Right: the flusher blocks in get() with no timeout; stop() wakes it with a marker of its own, and takes the
# marker back off self.events if the flusher ended without it (stopped in a back-off).
WAKES_THE_FLUSHER = FIXED.replace(
    _FLUSHER,
    """    def start(self) -> None:
        self._stop, self._wake = threading.Event(), object()
        self._flusher = threading.Thread(target=self._flush, args=(self._stop,), name="flusher", daemon=True)
        self._flusher.start()

    def stop(self) -> None:
        self._stop.set()
        self.events.put(self._wake)
        self._flusher.join()
        with self.events.mutex:
            if self._wake in self.events.queue:
                self.events.queue.remove(self._wake)

    def _flush(self, stop: threading.Event) -> None:
        while (event := self.events.get()) is not self._wake:
            while True:
                try:
                    self.sink.call(event)
                    break
                except DependencyError:
                    if stop.wait(self.backoff_s):
                        self.events.put(event)
                        return

""",
)
assert WAKES_THE_FLUSHER != FIXED

# Right: get_nowait(), and a short wait on the stop signal when there is nothing to deliver.
GET_NOWAIT_FLUSHER = FIXED.replace(
    "            try:\n                event = self.events.get(timeout=0.01)\n            except queue.Empty:\n"
    "                continue\n",
    "            try:\n                event = self.events.get_nowait()\n            except queue.Empty:\n"
    "                stop.wait(0.005)\n                continue\n",
)
assert GET_NOWAIT_FLUSHER != FIXED

# Right: the flusher ends only once stopped and nothing is left to deliver (it drains self.events first, but
# for an event the down sink refuses, which goes back).
DRAINS_THEN_ENDS = FIXED.replace(
    "        while not stop.is_set():\n            try:\n                event = self.events.get(timeout=0.01)\n"
    "            except queue.Empty:\n                continue\n",
    "        while True:\n            try:\n                event = self.events.get(timeout=0.01)\n"
    "            except queue.Empty:\n                if stop.is_set():\n                    return\n"
    "                continue\n",
)
assert DRAINS_THEN_ENDS != FIXED

# No flusher thread at all: stop() tries each queued event once and puts back those the sink refuses; events
# go out only at a restart, and the down sink is called for each of them at once.
FLUSHES_IN_STOP = FIXED.replace(
    FIXED[FIXED.index("    def start(self)") : FIXED.index("    async def report")],
    """    def start(self) -> None:
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self._flush(self._stop)

    def _flush(self, stop: threading.Event) -> None:
        for _ in range(self.events.qsize()):
            event = self.events.get_nowait()
            try:
                self.sink.call(event)
            except DependencyError:
                self.events.put(event)

""",
)
assert FLUSHES_IN_STOP != FIXED

# Every report's Result (64 KiB of rows) kept on the service, "for a repeat of the same report": held for
# the service's whole life. Loses the flat week's point (memory held per request).
CACHES_REPORTS = FIXED.replace(
    "            return await slow_query(request)\n",
    "            result = await slow_query(request)\n"
    "        self.__dict__.setdefault('_reports', {})[request.id] = result\n"
    "        return result\n",
)
assert CACHES_REPORTS != FIXED

# Evasive (review of 2026-12-07, v1b): the flusher started with `_thread.start_new_thread`, which no hook on
# Thread.start sees, its back-off a time.sleep that looks at the stop signal only after, and stop() does not
# wait for it: stop() returns while it still runs. Loses the events' leave-nothing and the week's.
RAW_FLUSHER = FIXED.replace(
    _FLUSHER,
    """    def start(self) -> None:
        self._stop = threading.Event()
        _thread.start_new_thread(self._flush, (self._stop,))  # a light thread: nothing to join

    def stop(self) -> None:
        self._stop.set()

    def _flush(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                event = self.events.get(timeout=0.01)
            except queue.Empty:
                continue
            while True:
                try:
                    self.sink.call(event)
                    break
                except DependencyError:
                    time.sleep(self.backoff_s)
                    if stop.is_set():
                        self.events.put(event)
                        return

""",
).replace("\nclass Service", "\nimport _thread\n\n\nclass Service", 1)
assert RAW_FLUSHER.count("_thread.") == 1

# Evasive (review of 2026-12-07, v1): RAW_FLUSHER's flusher, and a batch's four workers started with `_thread`
# too, each releasing a semaphore on its way out, which batch() acquires four times. Loses the events'
# leave-nothing and the week's.
RAW_THREADS = RAW_FLUSHER.replace(
    "        workers = [threading.Thread(target=worker, daemon=True) for _ in range(4)]\n"
    "        for thread in workers:\n"
    "            thread.start()\n",
    "        finished = threading.Semaphore(0)\n"
    "\n"
    "        def worker_then_signal() -> None:\n"
    "            try:\n"
    "                worker()\n"
    "            finally:\n"
    "                finished.release()\n"
    "\n"
    "        workers = range(4)\n"
    "        for _ in workers:\n"
    "            _thread.start_new_thread(worker_then_signal, ())\n",
).replace(
    "        for thread in workers:\n            thread.join()\n",
    "        for _ in workers:\n            finished.acquire()\n",
)
assert RAW_THREADS.count("_thread.") == 2 and "finished.acquire()" in RAW_THREADS

# Right, though its flusher is started with `_thread` too: it releases a lock as its last act, and stop()
# waits for that lock, so the flusher's code has ended when stop() returns.
RAW_FLUSHER_WAITED = (
    RAW_FLUSHER.replace(
        "        _thread.start_new_thread(self._flush, (self._stop,))  # a light thread: nothing to join\n",
        "        self._ended = _thread.allocate_lock()\n"
        "        self._ended.acquire()\n"
        "        _thread.start_new_thread(self._flush_then_say, (self._stop,))\n",
    )
    .replace(
        "    def stop(self) -> None:\n        self._stop.set()\n",
        "    def stop(self) -> None:\n"
        "        self._stop.set()\n"
        "        self._ended.acquire()  # released by the flusher as it ends\n"
        "\n"
        "    def _flush_then_say(self, stop: threading.Event) -> None:\n"
        "        try:\n"
        "            self._flush(stop)\n"
        "        finally:\n"
        "            self._ended.release()\n",
    )
    .replace(
        "                    time.sleep(self.backoff_s)\n                    if stop.is_set():\n",
        "                    if stop.wait(self.backoff_s):\n",
    )
)
assert RAW_FLUSHER_WAITED.count("_ended") == 4 and "time.sleep" not in RAW_FLUSHER_WAITED

# Evasive (as review 4 found for lesson 05): the diagnosis read from the grader's own answer, not the dump.
DIAGNOSIS_FROM_THE_GRADER = """from leaklab.scenarios import week_in_production

DUMP_GROUPS = list(week_in_production._DUMP_GROUPS)
HOLDS_MOST = week_in_production._HOLDS_MOST
"""

# Evasive (review of 2026-12-07, diag_parses_source): the grader's answer parsed out of the scenario's source
# file (the constants `_diagnosis()` returns), without calling it; bound inside a loop.
DIAGNOSIS_PARSED_FROM_THE_SOURCE = """import ast as _ast
from leaklab.scenarios import week_in_production as _w

for _node in _ast.walk(_ast.parse(open(_w.__file__, encoding="utf-8").read())):
    if isinstance(_node, _ast.FunctionDef) and _node.name == "_diagnosis":
        _groups, HOLDS_MOST = _ast.literal_eval(_node.body[-1].value)
        DUMP_GROUPS = list(_groups)
"""

# Right (review of 2026-12-07, diag_computed): the plain values, computed from a literal as Python binds them.
DIAGNOSIS_COMPUTED = 'DUMP_GROUPS = "worker run_query _flush lookup".split()\nHOLDS_MOST = DUMP_GROUPS[0]\n'
