"""Answer cells for notebook 04, right and wrong, as a learner might write them."""

# A pool with a lifecycle: a queue, a stop signal (one `None` per worker, after every job) and a join
# of every worker; a failing job is reported in `results` and its worker goes on.
FIXED = """
class Pool:
    def __init__(self, workers: int = 4) -> None:
        self.jobs = queue.Queue()
        self.results = {}
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job: int) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        for _ in self._threads:
            self.jobs.put(None)
        for thread in self._threads:
            thread.join()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                self.results[job] = handle(job)
            except JobFailed as failure:
                self.results[job] = failure
"""

# Still leaks: stop() asks the workers to end, and returns without waiting for them.
NO_JOIN = FIXED.replace("        for thread in self._threads:\n            thread.join()\n", "")
assert NO_JOIN != FIXED

# Wrong: stop() gives the workers a moment instead of waiting for them; with a long queue they are still
# at work when it returns, and the jobs they had not reached yet are missing from results.
SLEEPS_INSTEAD_OF_JOIN = FIXED.replace(
    "        for thread in self._threads:\n            thread.join()\n",
    "        import time\n\n        time.sleep(0.1)\n",
)
assert SLEEPS_INSTEAD_OF_JOIN != FIXED

# Wrong: as SLEEPS_INSTEAD_OF_JOIN, a longer moment (0.2 s): still no wait for the workers themselves.
SLEEPS_LONGER = SLEEPS_INSTEAD_OF_JOIN.replace("time.sleep(0.1)", "time.sleep(0.2)")
assert SLEEPS_LONGER != SLEEPS_INSTEAD_OF_JOIN

# Correct too: stop() waits for its workers by asking each whether it still runs, until none does.
POLLS_IS_ALIVE = FIXED.replace(
    "        for thread in self._threads:\n            thread.join()\n",
    "        import time\n\n"
    "        while any(thread.is_alive() for thread in self._threads):\n            time.sleep(0.01)\n",
)
assert POLLS_IS_ALIVE != FIXED

# Wrong: stop() waits, but leaving the `with` block only sends the sentinels: its workers still run.
EXIT_ONLY_SIGNALS = FIXED.replace(
    "    def __exit__(self, *exc_info):\n        self.stop()\n",
    "    def __exit__(self, *exc_info):\n        for _ in self._threads:\n            self.jobs.put(None)\n",
)
assert EXIT_ONLY_SIGNALS != FIXED

# Wrong: leaving the `with` block stops the pool only when the block did not raise; after an error in
# the block its workers wait for ever.
STOPS_ONLY_ON_SUCCESS = FIXED.replace(
    "    def __exit__(self, *exc_info):\n        self.stop()\n",
    "    def __exit__(self, exc_type, exc, tb):\n        if exc_type is None:\n            self.stop()\n",
)
assert STOPS_ONLY_ON_SUCCESS != FIXED

# Wrong: leaving the `with` block stops the pool, but swallows an error raised in the block.
SWALLOWS_ERRORS = FIXED.replace(
    "    def __exit__(self, *exc_info):\n        self.stop()\n",
    "    def __exit__(self, *exc_info):\n        self.stop()\n        return True\n",
)
assert SWALLOWS_ERRORS != FIXED

# Evasive: submit() handles the job itself, in the caller's thread; the workers never get a job.
HANDLES_IN_SUBMIT = FIXED.replace(
    "    def submit(self, job: int) -> None:\n        self.jobs.put(job)\n",
    "    def submit(self, job: int) -> None:\n"
    "        try:\n            self.results[job] = handle(job)\n"
    "        except JobFailed as failure:\n            self.results[job] = failure\n",
)
assert HANDLES_IN_SUBMIT != FIXED

# Breaks behaviour: stop() ends the workers at once and the jobs still queued are silently dropped.
DROPS_QUEUED_JOBS = FIXED.replace(
    "        for _ in self._threads:\n            self.jobs.put(None)\n",
    "        while not self.jobs.empty():\n            self.jobs.get_nowait()\n"
    "        for _ in self._threads:\n            self.jobs.put(None)\n",
)
assert DROPS_QUEUED_JOBS != FIXED

# A failing job kills its worker.
DIES_ON_FAILURE = FIXED.replace(
    """            try:
                self.results[job] = handle(job)
            except JobFailed as failure:
                self.results[job] = failure
""",
    """            self.results[job] = handle(job)
""",
)
assert DIES_ON_FAILURE != FIXED

# stop() joins only the first worker: it returns while the others may still be at work.
JOINS_FIRST_ONLY = FIXED.replace(
    "        for thread in self._threads:\n            thread.join()\n", "        self._threads[0].join()\n"
)
assert JOINS_FIRST_ONLY != FIXED

# `results` is a class attribute: every pool shares one dict, which keeps every outcome ever reported.
SHARED_RESULTS = FIXED.replace("class Pool:\n", "class Pool:\n    results = {}\n\n").replace(
    "        self.results = {}\n", ""
)
assert "    results = {}\n" in SHARED_RESULTS and "self.results = {}" not in SHARED_RESULTS

# Workers on `_thread`, outside threading, and a stop() that waits for the queue, not for them.
LOWLEVEL_THREADS = """
import _thread


class Pool:
    def __init__(self, workers: int = 4) -> None:
        self.workers, self.results, self.jobs = workers, {}, queue.Queue()

    def start(self) -> None:
        for _ in range(self.workers):
            _thread.start_new_thread(self._work, ())

    def submit(self, job: int) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        self.jobs.join()
        for _ in range(self.workers):
            self.jobs.put(None)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                self.results[job] = handle(job)
            except JobFailed as failure:
                self.results[job] = failure
            finally:
                self.jobs.task_done()
"""

STUB = """
class Pool:
    def __init__(self, workers: int = 4) -> None:
        # YOUR CODE HERE
        raise NotImplementedError()
"""

# No lifecycle at all: stop() does nothing, so the workers wait on the queue for ever.
NEVER_STOPS = FIXED.replace(
    "        for _ in self._threads:\n            self.jobs.put(None)\n"
    "        for thread in self._threads:\n            thread.join()\n",
    "        pass\n",
)
assert NEVER_STOPS != FIXED

# Correct too: an executor is a pool with a lifecycle, whose threads start on demand.
EXECUTOR = """
from concurrent.futures import ThreadPoolExecutor


class Pool:
    def __init__(self, workers: int = 4) -> None:
        self.workers, self.results, self._executor = workers, {}, None

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=self.workers)

    def _do(self, job: int) -> None:
        try:
            self.results[job] = handle(job)
        except JobFailed as failure:
            self.results[job] = failure

    def submit(self, job: int) -> None:
        self._executor.submit(self._do, job)

    def stop(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()
"""

# Evasive: stop() drops the queued jobs; `results` is a dict subclass that runs handle() for them, in the
# reader's thread, whenever it is read.
_LAZY_DICT = """
class _Lazy(dict):
    def __init__(self):
        super().__init__()
        self.submitted = []

    def _fill(self):
        for job in self.submitted:
            if not dict.__contains__(self, job):
                try:
                    dict.__setitem__(self, job, handle(job))
                except JobFailed as failure:
                    dict.__setitem__(self, job, failure)

    def __contains__(self, job):
        self._fill()
        return dict.__contains__(self, job)

    def __getitem__(self, job):
        self._fill()
        return dict.__getitem__(self, job)

    def get(self, job, default=None):
        self._fill()
        return dict.get(self, job, default)

    def keys(self):
        self._fill()
        return dict.keys(self)

    def items(self):
        self._fill()
        return dict.items(self)

    def values(self):
        self._fill()
        return dict.values(self)

    def __iter__(self):
        self._fill()
        return dict.__iter__(self)

    def __len__(self):
        self._fill()
        return dict.__len__(self)

    def copy(self):
        self._fill()
        return dict(dict.items(self))

"""
LAZY_RESULTS = _LAZY_DICT + DROPS_QUEUED_JOBS.replace(
    "        self.results = {}\n", "        self.results = _Lazy()\n"
).replace("        self.jobs.put(job)\n", "        self.results.submitted.append(job)\n        self.jobs.put(job)\n", 1)
assert "_Lazy()" in LAZY_RESULTS and "submitted.append" in LAZY_RESULTS

# Evasive: as LAZY_RESULTS, but the dict makes the dropped jobs' outcomes up without calling handle().
MADE_UP_RESULTS = LAZY_RESULTS.replace(
    """                try:
                    dict.__setitem__(self, job, handle(job))
                except JobFailed as failure:
                    dict.__setitem__(self, job, failure)
""",
    """                dict.__setitem__(self, job, job * job if job >= 0 else JobFailed(f"job {job} failed"))
""",
)
assert MADE_UP_RESULTS != LAZY_RESULTS

# Evasive: stop() drops the queued jobs and writes made-up outcomes for them into a plain dict itself.
MADE_UP_IN_STOP = FIXED.replace(
    "        for _ in self._threads:\n            self.jobs.put(None)\n",
    "        while not self.jobs.empty():\n            job = self.jobs.get_nowait()\n"
    '            self.results[job] = job * job if job >= 0 else JobFailed(f"job {job} failed")\n'
    "        for _ in self._threads:\n            self.jobs.put(None)\n",
)
assert MADE_UP_IN_STOP != FIXED

# Wrong: start() starts one worker whatever `workers` says.
ONE_WORKER = FIXED.replace("for _ in range(workers)]", "for _ in range(1)]")
assert ONE_WORKER != FIXED

# Wrong (review 4): a failing job ends the worker thread that ran it, which first starts a replacement:
# some thread of the pool does the next job, but the failure killed its worker ("A failing job does not
# kill its worker"); every failure leaves one more dead thread in `_threads`.
REPLACES_DEAD_WORKER = """
class Pool:
    def __init__(self, workers: int = 4) -> None:
        self.workers, self.jobs, self.results = workers, queue.Queue(), {}
        self._threads, self._lock = [], threading.Lock()

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def start(self) -> None:
        for _ in range(self.workers):
            self._spawn()

    def submit(self, job: int) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        for _ in range(self.workers):
            self.jobs.put(None)
        while running := [t for t in list(self._threads) if t.is_alive()]:
            for thread in running:
                thread.join()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                self.results[job] = handle(job)
            except JobFailed as failure:
                self.results[job] = failure
                self._spawn()  # a replacement takes over, and this worker ends
                return
"""

# Evasive (review 4): stop() waits for every job (Queue.join), then says the workers have ended while
# they still run: `_is_stopped` set and each removed from threading's registry; they end 30 ms later.
LYING_THREADS = """
import time


class _Quiet(threading.Thread):
    def is_alive(self) -> bool:
        return False


class Pool:
    def __init__(self, workers: int = 4) -> None:
        self.jobs, self.results = queue.Queue(), {}
        self._threads = [_Quiet(target=self._work, daemon=True) for _ in range(workers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job: int) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        for _ in self._threads:
            self.jobs.put(None)
        self.jobs.join()
        for thread in self._threads:
            thread._is_stopped = True
            threading._active.pop(thread.ident, None)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                self.results[job] = handle(job)
            except JobFailed as failure:
                self.results[job] = failure
            finally:
                self.jobs.task_done()
                if job is None:
                    time.sleep(0.03)  # still running after stop() has returned
"""

# Wrong (red team w10): stop() waits for the queue (Queue.join, task_done for the sentinels too), not for
# the workers: each is still running, between its last task_done and its thread's end, as stop() returns.
QUEUE_JOIN = """
class Pool:
    def __init__(self, workers: int = 4) -> None:
        self.workers, self.jobs, self.results = workers, queue.Queue(), {}
        self.threads = []

    def start(self) -> None:
        for _ in range(self.workers):
            thread = threading.Thread(target=self._work)
            thread.start()
            self.threads.append(thread)

    def submit(self, job: int) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        self.jobs.join()  # every job and every sentinel has been taken and done

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                self.results[job] = handle(job)
            except JobFailed as failure:
                self.results[job] = failure
            finally:
                self.jobs.task_done()
"""

# Correct too, in the designs of the two above: Thread subclass workers listed under a lock, a failure
# caught in the worker's loop; stop() waits for every job (Queue.join), then joins every worker.
THREAD_SUBCLASS_JOINS = """
class _Worker(threading.Thread):
    def __init__(self, pool) -> None:
        super().__init__(daemon=True)
        self.pool = pool

    def run(self) -> None:
        for job in iter(self.pool.jobs.get, None):
            try:
                self.pool.results[job] = handle(job)
            except JobFailed as failure:
                self.pool.results[job] = failure
            finally:
                self.pool.jobs.task_done()
        self.pool.jobs.task_done()


class Pool:
    def __init__(self, workers: int = 4) -> None:
        self.workers, self.jobs, self.results = workers, queue.Queue(), {}
        self._threads, self._lock = [], threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._threads = [_Worker(self) for _ in range(self.workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, job: int) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        for _ in self._threads:
            self.jobs.put(None)
        self.jobs.join()
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()
"""

# Right (review 4): the standard library's `multiprocessing.pool.ThreadPool`, made in start(); its three
# helper threads (task, result and worker handlers) run beside the workers, which is no fault.
STDLIB_THREADPOOL = """
from multiprocessing.pool import ThreadPool


class Pool:
    def __init__(self, workers: int = 4) -> None:
        self.workers, self.results, self._pool = workers, {}, None

    def start(self) -> None:
        self._pool = ThreadPool(self.workers)

    def _run(self, job: int) -> None:
        try:
            self.results[job] = handle(job)
        except JobFailed as failure:
            self.results[job] = failure

    def submit(self, job: int) -> None:
        self._pool.apply_async(self._run, (job,))

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.close()  # no more jobs; the queued ones still run
            self._pool.join()  # every worker and helper thread has ended
            self._pool = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()
"""

# Right (review 4): fan-in, as the lesson's Go batch does: workers send (job, outcome) to one collector
# thread of the pool, which files them; stop() ends the workers, then the collector.
COLLECTOR_THREAD = """
class Pool:
    _DONE = object()

    def __init__(self, workers: int = 4) -> None:
        self.workers, self.results = workers, {}
        self._jobs, self._outcomes = queue.Queue(), queue.Queue()
        self._workers, self._collector = [], None

    def start(self) -> None:
        self._collector = threading.Thread(target=self._collect)
        self._collector.start()
        self._workers = [threading.Thread(target=self._work) for _ in range(self.workers)]
        for thread in self._workers:
            thread.start()

    def submit(self, job: int) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        for _ in self._workers:
            self._jobs.put(self._DONE)
        for thread in self._workers:
            thread.join()
        if self._collector is not None:
            self._outcomes.put(self._DONE)
            self._collector.join()
            self._collector = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _collect(self) -> None:
        while (item := self._outcomes.get()) is not self._DONE:
            job, outcome = item
            self.results[job] = outcome

    def _work(self) -> None:
        while (job := self._jobs.get()) is not self._DONE:
            try:
                outcome = handle(job)
            except JobFailed as failure:
                outcome = failure
            self._outcomes.put((job, outcome))
"""

# Wrong (review 4): the workers start in __init__ and start() does nothing: a pool made and never started
# (its owner failing before the `with`) leaves its workers waiting for ever.
THREADS_IN_INIT = FIXED.replace(
    "        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]\n",
    "        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]\n"
    "        for thread in self._threads:\n            thread.start()\n",
).replace(
    "        for thread in self._threads:\n            thread.start()\n\n    def submit",
    "        pass\n\n    def submit",
)
assert THREADS_IN_INIT.count("thread.start()") == 1 and "        pass\n" in THREADS_IN_INIT

# Wrong by the task's words (red team 2026-12-07b r11_waitgroup, set 3 r04_waitgroup, both called right by
# their reviewers before the task said so): the article's WaitGroup in Python, a counter each worker lowers
# in its `finally:` (Go's `defer wg.Done()`) and stop() waits on. Every worker's code has returned, but its
# thread still runs when the counter reaches zero: `is_alive()` is true as stop() returns.
WAIT_GROUP = (
    FIXED.replace(
        "        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]\n",
        "        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]\n"
        "        self._running, self._changed = 0, threading.Condition()\n",
    )
    .replace(
        "        for thread in self._threads:\n            thread.start()\n",
        "        for thread in self._threads:\n"
        "            with self._changed:\n"
        "                self._running += 1  # wg.Add(1), before the thread starts\n"
        "            thread.start()\n",
    )
    .replace(
        "        for thread in self._threads:\n            thread.join()\n",
        "        with self._changed:\n            self._changed.wait_for(lambda: self._running == 0)  # wg.Wait()\n",
    )
    .replace(
        "    def _work(self) -> None:\n"
        "        while (job := self.jobs.get()) is not None:\n"
        "            try:\n"
        "                self.results[job] = handle(job)\n"
        "            except JobFailed as failure:\n"
        "                self.results[job] = failure\n",
        "    def _work(self) -> None:\n"
        "        try:\n"
        "            while (job := self.jobs.get()) is not None:\n"
        "                try:\n"
        "                    self.results[job] = handle(job)\n"
        "                except JobFailed as failure:\n"
        "                    self.results[job] = failure\n"
        "        finally:\n"
        "            with self._changed:  # defer wg.Done()\n"
        "                self._running -= 1\n"
        "                self._changed.notify_all()\n",
    )
)
assert WAIT_GROUP.count("self._running") == 4 and "join" not in WAIT_GROUP
