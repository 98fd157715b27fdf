"""Answer cells for notebook 02, right and wrong, as a learner might write them."""

import inspect

from leaklab.scenarios.skipped_stop import LeakyWorker

# The lesson's leaky worker itself, as a learner who changed nothing would submit it.
LEAKY = inspect.getsource(LeakyWorker).replace("class LeakyWorker:", "class Worker:")

# A fix: every wait is on the stop signal itself, and stop() waits for the thread, within a bound.
FIXED = """
class Worker:
    def __init__(self, jobs, dependency, *, backoff_s=0.02):
        self.jobs, self.dependency, self.backoff_s = jobs, dependency, backoff_s
        self.errors = 0
        self.results = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self, timeout=1.0):
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self):
        while not self._stop.is_set():
            try:
                job = self.jobs.get(timeout=0.01)
            except queue.Empty:
                continue
            while not self._stop.is_set():
                try:
                    self.results.append(self.dependency.call(job))
                    break
                except DependencyError:
                    self.errors += 1
                    self._stop.wait(self.backoff_s)
"""

# Wrong: stop() signals and says it stopped, without waiting for the thread.
SIGNALS_ONLY = FIXED.replace(
    "        self._thread.join(timeout)\n        return not self._thread.is_alive()\n", "        return True\n"
)
assert SIGNALS_ONLY != FIXED

# Waits for the thread in stop(), but the retry path still sleeps through the stop signal.
JOINS_BUT_SLEEPS = FIXED.replace("self._stop.wait(self.backoff_s)", "time.sleep(self.backoff_s)").replace(
    "            while not self._stop.is_set():\n                try:", "            while True:\n                try:"
)
assert JOINS_BUT_SLEEPS.count("time.sleep") == 1 and "while True" in JOINS_BUT_SLEEPS

# Looks at the stop signal in the retry loop and waits for the thread, but backs off with time.sleep:
# stop() waits out the back-off (a half-fix that a short back-off hides).
SLEEPS_IN_BACKOFF = FIXED.replace("self._stop.wait(self.backoff_s)", "time.sleep(self.backoff_s)")
assert (
    SLEEPS_IN_BACKOFF.count("time.sleep") == 1
    and "while not self._stop.is_set():\n                try:" in SLEEPS_IN_BACKOFF
)

# Stops at once, by dropping a job whose call fails: no leak, but the work is lost.
DROPS_FAILED_JOBS = FIXED.replace(
    "                    self._stop.wait(self.backoff_s)\n", "                    break\n"
)
assert DROPS_FAILED_JOBS != FIXED

# Evasive: a failed call is given a made-up result (what the dependency would have said), never retried.
MADE_UP_RESULT = FIXED.replace(
    "                    self._stop.wait(self.backoff_s)\n",
    "                    self.results.append(job * 2)\n                    break\n",
)
assert MADE_UP_RESULT != FIXED

# Stops promptly, but never blocks while idle: it spins (Go's `default:` branch).
SPINS = FIXED.replace("job = self.jobs.get(timeout=0.01)", "job = self.jobs.get_nowait()")
assert SPINS != FIXED

STUB = """
class Worker:
    def __init__(self, jobs, dependency, *, backoff_s=0.02):
        # YOUR CODE HERE
        raise NotImplementedError()
"""

# Counts errors, but retries at once: no back-off at all.
NO_BACKOFF = FIXED.replace("                    self._stop.wait(self.backoff_s)\n", "")
assert NO_BACKOFF != FIXED

# Wrong: stop() waits for the thread, within its bound, then says True whether or not the thread ended.
STOP_LIES = FIXED.replace("        return not self._thread.is_alive()\n", "        return True\n")
assert STOP_LIES != FIXED

# Wrong: stop() gives the thread a millisecond instead of joining it, and says True.
SLEEPS_NOT_JOIN = FIXED.replace(
    "        self._thread.join(timeout)\n        return not self._thread.is_alive()\n",
    "        time.sleep(0.001)\n        return True\n",
)
assert SLEEPS_NOT_JOIN != FIXED

# Wrong: stop() sleeps its whole timeout instead of joining, then says truly whether the thread ended: never
# prompt, however soon the worker ends.
SLEEPS_ITS_TIMEOUT = FIXED.replace("        self._thread.join(timeout)\n", "        time.sleep(timeout)\n")
assert SLEEPS_ITS_TIMEOUT != FIXED

# Wrong: a back-off of a fixed 30 ms, whatever backoff_s says.
FIXED_BACKOFF = FIXED.replace("self._stop.wait(self.backoff_s)", "self._stop.wait(0.03)")
assert FIXED_BACKOFF != FIXED

# Wrong: a back-off of a fixed 10 ms, whatever backoff_s says.
FIXED_BACKOFF_10MS = FIXED.replace("self._stop.wait(self.backoff_s)", "self._stop.wait(0.01)")
assert FIXED_BACKOFF_10MS != FIXED

# A fix with exponential back-off: each failure of the same job doubles the wait, from backoff_s (the
# task allows a back-off that grows from there).
EXPONENTIAL_BACKOFF = FIXED.replace(
    "                except DependencyError:\n                    self.errors += 1\n"
    "                    self._stop.wait(self.backoff_s)\n",
    "                except DependencyError:\n                    self.errors += 1\n"
    "                    self._stop.wait(delay)\n                    delay *= 2\n",
).replace(
    "            while not self._stop.is_set():\n                try:",
    "            delay = self.backoff_s\n            while not self._stop.is_set():\n                try:",
)
assert EXPONENTIAL_BACKOFF.count("delay") == 3

# A fix that blocks in jobs.get() with no timeout, woken by a sentinel stop() puts into the queue (the
# sentinel is left in the caller's queue, which the task does not forbid).
SENTINEL = """
class Worker:
    def __init__(self, jobs, dependency, *, backoff_s=0.02):
        self.jobs, self.dependency, self.backoff_s = jobs, dependency, backoff_s
        self.errors = 0
        self.results = []
        self._stop = threading.Event()
        self._sentinel = object()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self, timeout=1.0):
        self._stop.set()
        self.jobs.put(self._sentinel)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self):
        while not self._stop.is_set():
            job = self.jobs.get()
            if job is self._sentinel:
                return
            while not self._stop.is_set():
                try:
                    self.results.append(self.dependency.call(job))
                    break
                except DependencyError:
                    self.errors += 1
                    self._stop.wait(self.backoff_s)
"""

# Right: the class made by a factory, named `_Worker` there and bound to `Worker` by the cell.
FROM_A_FACTORY = (
    "def make_worker_class():\n"
    + "\n".join(
        "    " + line if line else line for line in FIXED.replace("class Worker:", "class _Worker:").splitlines()
    )
    + "\n    return _Worker\n\n\nWorker = make_worker_class()\n"
)

# A fix on a Condition: stop() takes its lock to set a flag, the back-off is a wait_for on the flag.
CONDITION = """
class Worker:
    def __init__(self, jobs, dependency, *, backoff_s=0.02):
        self.jobs, self.dependency, self.backoff_s = jobs, dependency, backoff_s
        self.errors = 0
        self.results = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self, timeout=1.0):
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self):
        while not self._stopping:
            try:
                job = self.jobs.get(timeout=0.01)
            except queue.Empty:
                continue
            while True:
                try:
                    self.results.append(self.dependency.call(job))
                    break
                except DependencyError:
                    self.errors += 1
                    with self._cond:
                        if self._cond.wait_for(lambda: self._stopping, timeout=self.backoff_s):
                            return
"""

# Wrong: stop() empties the jobs queue "to clean up", dropping jobs that were never tried.
DRAINS_ON_STOP = FIXED.replace(
    "        self._stop.set()\n        self._thread.join(timeout)\n",
    "        self._stop.set()\n"
    "        while True:\n"
    "            try:\n"
    "                self.jobs.get_nowait()\n"
    "            except queue.Empty:\n"
    "                break\n"
    "        self._thread.join(timeout)\n",
)
assert DRAINS_ON_STOP != FIXED

# Wrong: takes every queued job at once into a batch; a stop in a back-off drops the untried rest.
TAKES_A_BATCH = FIXED.replace(
    """    def _run(self):
        while not self._stop.is_set():
            try:
                job = self.jobs.get(timeout=0.01)
            except queue.Empty:
                continue
            while not self._stop.is_set():
                try:
                    self.results.append(self.dependency.call(job))
                    break
                except DependencyError:
                    self.errors += 1
                    self._stop.wait(self.backoff_s)
""",
    """    def _run(self):
        while not self._stop.is_set():
            try:
                batch = [self.jobs.get(timeout=0.01)]
            except queue.Empty:
                continue
            while not self.jobs.empty():
                batch.append(self.jobs.get_nowait())
            for job in batch:
                while True:
                    try:
                        self.results.append(self.dependency.call(job))
                        break
                    except DependencyError:
                        self.errors += 1
                        if self._stop.wait(self.backoff_s):
                            return
""",
)
assert TAKES_A_BATCH != FIXED

# Wrong: errors counts the failures since the last success ("a call that raises adds one to errors").
ERRORS_RESET_ON_SUCCESS = FIXED.replace(
    "                    break\n", "                    self.errors = 0\n                    break\n"
)
assert ERRORS_RESET_ON_SUCCESS != FIXED

# Evasive: counts nothing itself; `errors` reads the dependency's count of failed calls, which counts every
# client's (wrong once the dependency is shared, or failed before the worker's first job).
ERRORS_FROM_DEPENDENCY = (
    FIXED.replace("        self.errors = 0\n", "")
    .replace("                    self.errors += 1\n", "")
    .replace(
        "    def start(self):\n",
        "    @property\n    def errors(self):\n        return self.dependency.failures\n\n    def start(self):\n",
    )
)
assert "self.errors" not in ERRORS_FROM_DEPENDENCY and "def errors" in ERRORS_FROM_DEPENDENCY

# A fix written as a dataclass: `KW_ONLY` makes backoff_s keyword-only, as the task's signature has it. The
# kernel evaluates annotations; a cell compiled with the grader's own `from __future__ import annotations`
# made `_` a field (an outside reviewer's right answer, 0/9 then).
DATACLASS = """
from dataclasses import KW_ONLY, dataclass, field


@dataclass(eq=False)
class Worker:
    jobs: queue.Queue
    dependency: Dependency
    _: KW_ONLY
    backoff_s: float = 0.02
    errors: int = 0
    results: list = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self, timeout=1.0):
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self):
        while not self._stop.is_set():
            try:
                job = self.jobs.get(timeout=0.01)
            except queue.Empty:
                continue
            while True:
                try:
                    self.results.append(self.dependency.call(job))
                    break
                except DependencyError:
                    self.errors += 1
                    if self._stop.wait(self.backoff_s):
                        return
"""
# Wrong: the first retry of each failed job comes at once, only later ones wait backoff_s ("never sooner").
FIRST_RETRY_AT_ONCE = FIXED.replace(
    "            while not self._stop.is_set():\n                try:",
    "            tries = 0\n            while not self._stop.is_set():\n                try:",
).replace(
    "                    self.errors += 1\n                    self._stop.wait(self.backoff_s)\n",
    "                    self.errors += 1\n                    tries += 1\n"
    "                    if tries > 1:\n                        self._stop.wait(self.backoff_s)\n",
)
assert FIRST_RETRY_AT_ONCE.count("tries") == 3

# Wrong: "equal jitter", a back-off drawn from [backoff_s / 2, backoff_s]: most retries come too soon.
EQUAL_JITTER = "import random\n" + FIXED.replace(
    "self._stop.wait(self.backoff_s)",
    "self._stop.wait(self.backoff_s / 2 + random.uniform(0, self.backoff_s / 2))",
)
assert EQUAL_JITTER.count("random") == 2

# Wrong: exponential back-off off by one, `backoff_s * 2 ** (attempt - 1)` from attempt 0: the first retry
# waits half a back-off (it grows, but not from backoff_s).
EXPONENTIAL_OFF_BY_ONE = FIXED.replace(
    "            while not self._stop.is_set():\n                try:",
    "            attempt = 0\n            while not self._stop.is_set():\n                try:",
).replace(
    "                    self._stop.wait(self.backoff_s)\n",
    "                    self._stop.wait(self.backoff_s * 2 ** (attempt - 1))\n                    attempt += 1\n",
)
assert EXPONENTIAL_OFF_BY_ONE.count("attempt") == 3

# Right: jitter added on top of the back-off, from [backoff_s, 1.5 backoff_s]: never sooner than backoff_s.
JITTER_ON_TOP = "import random\n" + FIXED.replace(
    "self._stop.wait(self.backoff_s)", "self._stop.wait(self.backoff_s * random.uniform(1, 1.5))"
)
assert JITTER_ON_TOP.count("random") == 2

# Evasive: keeps to backoff_s only when it is as long as the tests' (100 ms or more); else retries every 0.5 ms.
SPINS_UNLESS_LONG_BACKOFF = FIXED.replace(
    "self._stop.wait(self.backoff_s)", "self._stop.wait(self.backoff_s if self.backoff_s >= 0.1 else 0.0005)"
)
assert SPINS_UNLESS_LONG_BACKOFF != FIXED

# Wrong: sleeps through a short back-off (50 ms or less) in time.sleep, waits on the stop signal only in a
# longer one: stop() in the middle of a short back-off waits it out (section 6's half-fix).
SLEEPS_SHORT_BACKOFFS = FIXED.replace(
    "                    self._stop.wait(self.backoff_s)\n",
    "                    if self.backoff_s <= 0.05:\n                        time.sleep(self.backoff_s)\n"
    "                    else:\n                        self._stop.wait(self.backoff_s)\n",
)
assert SLEEPS_SHORT_BACKOFFS.count("time.sleep") == 1

# The same, with the sleep imported under a name of its own.
SLEEPS_SHORT_BACKOFFS_IMPORTED = "from time import sleep as pause\n" + SLEEPS_SHORT_BACKOFFS.replace(
    "time.sleep(self.backoff_s)", "pause(self.backoff_s)"
)
assert SLEEPS_SHORT_BACKOFFS_IMPORTED.count("pause") == 2

# Right: the back-off is slept in time.sleep slices of 5 ms at most, the stop signal looked at between them.
SLEEPS_IN_SLICES = FIXED.replace(
    "                    self._stop.wait(self.backoff_s)\n",
    "                    until = time.monotonic() + self.backoff_s\n"
    "                    while not self._stop.is_set() and (left := until - time.monotonic()) > 0:\n"
    "                        time.sleep(min(0.005, left))\n",
)
assert SLEEPS_IN_SLICES.count("time.sleep") == 1

# Right: the same, in slices of 10 ms (half the default back-off), the longest a slice may ask for.
SLEEPS_IN_10MS_SLICES = SLEEPS_IN_SLICES.replace("min(0.005, left)", "min(0.01, left)")
assert SLEEPS_IN_10MS_SLICES != SLEEPS_IN_SLICES

# Wrong: slices of 0.4 x backoff_s: stop() in the middle of a long back-off waits out a slice (0.8 s of 2 s).
COARSE_SLICES = SLEEPS_IN_SLICES.replace("min(0.005, left)", "min(self.backoff_s * 0.4, left)")
assert COARSE_SLICES != SLEEPS_IN_SLICES

# Wrong: the back-off waits in 0.2 s slices on an Event of its own that nothing sets, looking at the stop signal
# between them: stop() cannot wake a slice, so it waits out the one in progress (within any clock's bound).
SLICES_ON_ITS_OWN_EVENT = FIXED.replace(
    "                    self._stop.wait(self.backoff_s)\n",
    "                    until = time.monotonic() + self.backoff_s\n"
    "                    while not self._stop.is_set() and (left := until - time.monotonic()) > 0:\n"
    "                        threading.Event().wait(min(0.2, left))\n",
)
assert SLICES_ON_ITS_OWN_EVENT != FIXED

# Right: the back-off waits in 0.2 s slices on the stop signal itself: stop() wakes the slice in progress.
SLICES_ON_THE_STOP_EVENT = SLICES_ON_ITS_OWN_EVENT.replace("threading.Event().wait(", "self._stop.wait(")
assert SLICES_ON_THE_STOP_EVENT != SLICES_ON_ITS_OWN_EVENT

# Wrong: looks at the stop signal only after taking the next job, and returns with it: a stop() during a call
# drops the job taken after it.
TAKES_THEN_CHECKS_STOP = FIXED.replace(
    "        while not self._stop.is_set():\n            try:\n                job = self.jobs.get(timeout=0.01)\n"
    "            except queue.Empty:\n                continue\n",
    "        while True:\n            try:\n                job = self.jobs.get(timeout=0.01)\n"
    "            except queue.Empty:\n                if self._stop.is_set():\n                    return\n"
    "                continue\n"
    "            if self._stop.is_set():\n                return\n",
).replace(
    "                    self._stop.wait(self.backoff_s)\n",
    "                    if self._stop.wait(self.backoff_s):\n                        return\n",
)
assert TAKES_THEN_CHECKS_STOP.count("while True") == 1 and TAKES_THEN_CHECKS_STOP.count("return") == 4

# Right: the same order, but a job taken after stop() goes back into the queue, untried.
PUTS_BACK_AFTER_STOP = TAKES_THEN_CHECKS_STOP.replace(
    "            if self._stop.is_set():\n                return\n",
    "            if self._stop.is_set():\n                self.jobs.put(job)\n                return\n",
)
assert PUTS_BACK_AFTER_STOP != FIXED

# Wrong: a call in progress when stop() comes that then succeeds has its result thrown away: a job that was
# not failing is dropped.
DROPS_RESULT_AFTER_STOP = FIXED.replace(
    "                    self.results.append(self.dependency.call(job))\n",
    "                    result = self.dependency.call(job)\n"
    "                    if self._stop.is_set():\n                        return\n"
    "                    self.results.append(result)\n",
)
assert DROPS_RESULT_AFTER_STOP.count("return") == 2

# Evasive: no stop signal; stop() raises SystemExit in the worker's thread (PyThreadState_SetAsyncExc), which
# ends it wherever it is, in the middle of a call whose result is then lost.
KILLS_WITH_ASYNC_EXCEPTION = """
import ctypes


class Worker:
    def __init__(self, jobs, dependency, *, backoff_s=0.02):
        self.jobs, self.dependency, self.backoff_s = jobs, dependency, backoff_s
        self.errors = 0
        self.results = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self, timeout=1.0):
        if self._thread.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread.ident), ctypes.py_object(SystemExit)
            )
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self):
        while True:
            try:
                job = self.jobs.get(timeout=0.005)
            except queue.Empty:
                continue
            while True:
                try:
                    self.results.append(self.dependency.call(job))
                    break
                except DependencyError:
                    self.errors += 1
                    until = time.monotonic() + self.backoff_s
                    while time.monotonic() < until:
                        time.sleep(0.005)
"""

# Wrong: stop() waits for the thread only while it is busy with a job; an idle worker is trusted to see
# the signal at its next poll, so stop() returns with the thread still running.
JOINS_ONLY_WHEN_BUSY = (
    FIXED.replace("        self.errors = 0\n", "        self.errors = 0\n        self._busy = False\n")
    .replace(
        "        self._thread.join(timeout)\n",
        "        if not self._busy:\n            return True\n        self._thread.join(timeout)\n",
    )
    .replace(
        "            while not self._stop.is_set():\n                try:",
        "            self._busy = True\n            while not self._stop.is_set():\n                try:",
    )
    .replace(
        "                    self._stop.wait(self.backoff_s)\n",
        "                    self._stop.wait(self.backoff_s)\n            self._busy = False\n",
    )
)
assert JOINS_ONLY_WHEN_BUSY.count("self._busy") == 4

# Evasive: only the process's first Worker is the leaky one (a back-off slept in time.sleep, a stop() that
# says True without waiting); every later one is right.
FIRST_WORKER_LEAKY = (
    FIXED.replace(
        "        self._stop = threading.Event()\n",
        "        self._stop = threading.Event()\n"
        "        Worker.made = getattr(Worker, 'made', 0) + 1\n"
        "        self._leaky = Worker.made == 1\n",
    )
    .replace(
        "        self._stop.set()\n        self._thread.join(timeout)\n",
        "        self._stop.set()\n        if self._leaky:\n            return True\n"
        "        self._thread.join(timeout)\n",
    )
    .replace(
        "                    self._stop.wait(self.backoff_s)\n",
        "                    if self._leaky:\n                        time.sleep(self.backoff_s)\n"
        "                    else:\n                        self._stop.wait(self.backoff_s)\n",
    )
)
assert FIRST_WORKER_LEAKY.count("self._leaky") == 3

# Evasive: the leaky worker (a back-off slept in time.sleep, a stop() that says True without waiting) in the
# notebook, the fix only where ipykernel is not loaded (the grader's run, it guesses), red team E01.
DETECTS_THE_NOTEBOOK = '''
import sys

_UNDER_GRADER = "ipykernel" not in sys.modules  # the grader runs this cell in a fresh, plain process


class Worker:
    """Takes jobs from `jobs` and calls the dependency, retrying failures; stops when asked."""

    def __init__(self, jobs: queue.Queue, dependency: Dependency, *, backoff_s: float = 0.02) -> None:
        self.jobs, self.dependency, self.backoff_s = jobs, dependency, backoff_s
        self.errors = 0
        self.results: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        self._stop.set()
        if _UNDER_GRADER:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _back_off(self) -> None:
        if _UNDER_GRADER:
            self._stop.wait(self.backoff_s)
        else:
            time.sleep(self.backoff_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.jobs.get(timeout=0.01)
            except queue.Empty:
                continue
            while _UNDER_GRADER and not self._stop.is_set() or not _UNDER_GRADER:
                try:
                    self.results.append(self.dependency.call(job))
                    break
                except DependencyError:
                    self.errors += 1
                    self._back_off()
'''

# Wrong: gives up on a job after 10 failed tries, a common production habit, and moves on: a job whose
# dependency stays down longer is dropped ("retried ... until it succeeds: no job is dropped"; red team 2,
# w15). The outages of the visible and hidden bursts' `work_gets_done` last 40 and 60-90 failed calls.
GIVES_UP_AFTER_TEN_TRIES = FIXED.replace(
    "            while not self._stop.is_set():\n                try:",
    "            for _try in range(10):\n"
    "                if self._stop.is_set():\n"
    "                    break\n"
    "                try:",
)
assert "range(10)" in GIVES_UP_AFTER_TEN_TRIES

# Wrong: the same with fifty tries: caught by the hidden burst's longer outage only.
GIVES_UP_AFTER_FIFTY_TRIES = GIVES_UP_AFTER_TEN_TRIES.replace("range(10)", "range(50)")

# Wrong: a "graceful" stop() that first sleeps 0.3 s to let the job in progress finish, then signals and joins:
# never prompt (red team 2, w14).
WAITS_BEFORE_IT_SIGNALS = FIXED.replace(
    "    def stop(self, timeout=1.0):\n        self._stop.set()\n",
    "    def stop(self, timeout=1.0):\n        time.sleep(0.3)\n        self._stop.set()\n",
)
assert WAITS_BEFORE_IT_SIGNALS != FIXED

# Evasive: waits on the stop signal only for back-offs of 1 s or more (the long ones a stop is timed at);
# shorter ones wait on a fresh Event nobody sets, deaf to stop() (red team 2, e07).
DEAF_UNDER_A_SECOND = FIXED.replace(
    "                    self._stop.wait(self.backoff_s)\n",
    "                    (self._stop if self.backoff_s >= 1.0 else threading.Event()).wait(self.backoff_s)\n",
)
assert DEAF_UNDER_A_SECOND != FIXED
