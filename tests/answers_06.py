"""Answer cells for notebook 06, right and wrong, as a learner might write them."""

# The monitor: tick() samples, keeps the series, counts the samples above the threshold in a row, warns
# once when that run reaches `sustain` and once when the count is back; a thread ticks every interval,
# waiting on an Event so that stop() is heard at once, and stop() joins it.
FIXED = """
class Monitor:
    def __init__(self, *, sample, threshold, sustain=3, interval_s=1.0, warn=print):
        self.sample, self.threshold, self.sustain = sample, threshold, sustain
        self.interval_s, self.warn = interval_s, warn
        self.series = []
        self._over = 0
        self._alerting = False
        self._stop = threading.Event()
        self._thread = None

    def tick(self):
        now = self.sample()
        self.series.append(now)
        self._over = self._over + 1 if now.total > self.threshold else 0
        if self._over >= self.sustain and not self._alerting:
            self._alerting = True
            self.warn(f"ALERT: {now.total} tasks and threads, above {self.threshold} for {self._over} samples")
        elif self._over == 0 and self._alerting:
            self._alerting = False
            self.warn(f"RESOLVED: {now.total} tasks and threads, back under {self.threshold}")
        return now

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="leak-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _run(self):
        while not self._stop.wait(self.interval_s):
            self.tick()
"""

# Correct too: the alert looks at the last `sustain` samples of the series; the thread samples first,
# then waits.
WINDOW = """
class Monitor:
    def __init__(self, *, sample, threshold, sustain=3, interval_s=1.0, warn=print):
        self.sample, self.threshold, self.sustain, self.interval_s, self.warn = (
            sample, threshold, sustain, interval_s, warn
        )
        self.series, self.firing = [], False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop)

    def tick(self):
        self.series.append(self.sample())
        recent = self.series[-self.sustain:]
        if not self.firing and len(recent) == self.sustain and all(s.total > self.threshold for s in recent):
            self.firing = True
            self.warn(f"leak suspected: {recent[-1].total} live tasks and threads")
        elif self.firing and self.series[-1].total <= self.threshold:
            self.firing = False
            self.warn(f"back to normal: {self.series[-1].total}")
        return self.series[-1]

    def _loop(self):
        while True:
            self.tick()
            if self._done.wait(self.interval_s):
                return

    def start(self):
        self._thread.start()

    def stop(self):
        self._done.set()
        self._thread.join()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()
"""

# A log flood: warns on every sample once the count has been high for `sustain` samples.
FLOOD = FIXED.replace(
    "if self._over >= self.sustain and not self._alerting:", "if self._over >= self.sustain:"
).replace("elif self._over == 0 and self._alerting:", "if self._over == 0 and self._alerting:")
assert FLOOD != FIXED

# Never says that it is over: the alert is re-armed in silence.
SILENT_RECOVERY = FIXED.replace(
    '            self.warn(f"RESOLVED: {now.total} tasks and threads, back under {self.threshold}")\n', ""
)
assert SILENT_RECOVERY != FIXED

# Warns once, ever: the alert is never re-armed, and recovery is never reported.
NEVER_REARMS = FIXED.replace(
    "        elif self._over == 0 and self._alerting:\n"
    "            self._alerting = False\n"
    '            self.warn(f"RESOLVED: {now.total} tasks and threads, back under {self.threshold}")\n',
    "",
)
assert NEVER_REARMS != FIXED

# No `for:`: alerts on the first sample above the threshold, so every healthy burst raises an alarm.
NO_SUSTAIN = FIXED.replace(
    "if self._over >= self.sustain and not self._alerting:", "if self._over and not self._alerting:"
)
assert NO_SUSTAIN != FIXED

# Counts samples above the threshold without resetting on a dip: healthy bursts add up to an alert.
NOT_CONSECUTIVE = FIXED.replace(
    "        self._over = self._over + 1 if now.total > self.threshold else 0\n"
    "        if self._over >= self.sustain and not self._alerting:\n",
    "        self._over += now.total > self.threshold\n        if self._over >= self.sustain and not self._alerting:\n",
).replace(
    "        elif self._over == 0 and self._alerting:\n            self._alerting = False\n",
    "        elif now.total <= self.threshold and self._alerting:\n            self._alerting, self._over = False, 0\n",
)
assert NOT_CONSECUTIVE != FIXED

# stop() signals the thread and returns without waiting for it.
NO_JOIN = FIXED.replace(
    "        if self._thread is not None:\n            self._thread.join()\n            self._thread = None\n", ""
)
assert NO_JOIN != FIXED

# The same, with a thread class that says it has ended whenever asked.
LYING_THREAD = "class _Quiet(threading.Thread):\n    def is_alive(self):\n        return False\n\n\n" + NO_JOIN.replace(
    'threading.Thread(target=self._run, name="leak-monitor", daemon=True)',
    '_Quiet(target=self._run, name="leak-monitor", daemon=True)',
)
assert "_Quiet(target" in LYING_THREAD

# The article's ticker goroutine: a daemon thread nobody ever stops.
NEVER_STOPPED = FIXED.replace(
    "        self._stop.set()\n        if self._thread is not None:\n            self._thread.join()\n",
    "        if self._thread is not None:\n",
)
assert NEVER_STOPPED != FIXED

# A time.sleep loop: stop() joins, but the thread only looks at the stop signal after a whole interval.
SLEEP_LOOP = FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        while not self._stop.is_set():\n            self.tick()\n            time.sleep(self.interval_s)\n",
)
assert SLEEP_LOOP != FIXED

# Wrong: the thread ticks every 5 ms whatever interval_s says; a monitor set to sample once an hour
# samples 200 times a second.
FAST_CADENCE = FIXED.replace("self._stop.wait(self.interval_s)", "self._stop.wait(min(self.interval_s, 0.005))")
assert FAST_CADENCE != FIXED

# Never warns at all (tick keeps the series, the lifecycle is right): quiet for the healthy bursts only
# because it is quiet for everything, so it gets no credit for that either.
NEVER_WARNS = FIXED.replace(
    '            self.warn(f"ALERT: {now.total} tasks and threads, above {self.threshold} for {self._over} samples")\n',
    "            pass\n",
).replace('            self.warn(f"RESOLVED: {now.total} tasks and threads, back under {self.threshold}")\n', "")
assert NEVER_WARNS.count("self.warn(") == 0

# `>=` for "above": a count that stays exactly at the threshold for `sustain` samples raises an alert.
GE_THRESHOLD = FIXED.replace("if now.total > self.threshold else 0", "if now.total >= self.threshold else 0")
assert GE_THRESHOLD != FIXED

# stop() joins with a short timeout: it returns while the monitor's thread is still busy in a sample.
JOIN_WITH_SHORT_TIMEOUT = FIXED.replace("self._thread.join()", "self._thread.join(0.001)")
assert JOIN_WITH_SHORT_TIMEOUT != FIXED

# `<` for "at or under": a sample exactly at the threshold neither ends a run above it nor the alert.
RECOVERS_ONLY_UNDER = FIXED.replace(
    "        self._over = self._over + 1 if now.total > self.threshold else 0\n",
    "        if now.total > self.threshold:\n"
    "            self._over += 1\n"
    "        elif now.total < self.threshold:\n"
    "            self._over = 0\n",
)
assert RECOVERS_ONLY_UNDER != FIXED

# The thread is started with `_thread`, outside `threading`, and stop() does not wait for it.
LOWLEVEL_THREAD = "import _thread\n" + NO_JOIN.replace(
    '        self._thread = threading.Thread(target=self._run, name="leak-monitor", daemon=True)\n'
    "        self._thread.start()\n",
    "        _thread.start_new_thread(self._run, ())\n",
)
assert "start_new_thread" in LOWLEVEL_THREAD

STUB = """
class Monitor:
    def __init__(self, *, sample, threshold, sustain=3, interval_s=1.0, warn=print):
        # YOUR CODE HERE
        raise NotImplementedError()
"""

# Evasive: tick() is right, but the thread does not call it: it samples on its own and warns on every
# sample above the threshold, the article's flood, whenever the monitor is started.
THREAD_FLOODS = FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        while not self._stop.wait(self.interval_s):\n"
    "            now = self.sample()\n            self.series.append(now)\n"
    '            if now.total > self.threshold:\n                self.warn(f"ALERT: {now.total} tasks and threads")\n',
)
assert THREAD_FLOODS != FIXED

# Evasive: waits on the Event only for intervals over a second (an hour-long monitor's); otherwise a
# time.sleep ticker that hears stop() only after a whole interval.
SLEEPS_UNLESS_LONG = FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        if self.interval_s > 1:\n"
    "            while not self._stop.wait(self.interval_s):\n                self.tick()\n            return\n"
    "        while not self._stop.is_set():\n            time.sleep(self.interval_s)\n"
    "            if not self._stop.is_set():\n                self.tick()\n",
)
assert SLEEPS_UNLESS_LONG != FIXED

# Wrong: sleeps in time.sleep slices of up to 100 ms, looking at a flag in between: stop() is heard late.
POLLS_IN_SLICES = FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        due = time.monotonic() + self.interval_s\n"
    "        while not self._stop.is_set():\n"
    "            time.sleep(min(0.1, max(0.0, due - time.monotonic())))\n"
    "            if not self._stop.is_set() and time.monotonic() >= due:\n"
    "                self.tick()\n                due += self.interval_s\n",
)
assert POLLS_IN_SLICES != FIXED

# Wrong: tick() keeps the series and warns right, but returns None instead of the sample it took.
NO_RETURN = FIXED.replace("        return now\n", "", 1)
assert NO_RETURN != FIXED

# Wrong: waits in 20 ms slices on a private Event nobody sets, looking at the stop flag between them:
# stop() is heard only when a slice ends, whatever the slices are (an Event or time.sleep).
PRIVATE_EVENT_SLICES = FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        nap = threading.Event()\n"
    "        while True:\n"
    "            due = time.monotonic() + self.interval_s\n"
    "            while not self._stop.is_set() and time.monotonic() < due:\n"
    "                nap.wait(min(0.02, max(0.0, due - time.monotonic())))\n"
    "            if self._stop.is_set():\n                return\n"
    "            self.tick()\n",
)
assert PRIVATE_EVENT_SLICES != FIXED

# The same with slices of a whole second: stop() waits up to a second for the slice to end.
PRIVATE_EVENT_LONG_SLICES = PRIVATE_EVENT_SLICES.replace("min(0.02,", "min(1.0,")
assert PRIVATE_EVENT_LONG_SLICES != PRIVATE_EVENT_SLICES

# Correct: the same slices, on the stop Event itself: stop() wakes the slice in progress, so it is heard
# at once however short the slices are.
STOP_EVENT_SLICES = PRIVATE_EVENT_SLICES.replace("        nap = threading.Event()\n", "").replace(
    "nap.wait(", "self._stop.wait("
)
assert "nap" not in STOP_EVENT_SLICES

# Wrong: stop() joins with a bound (lesson 02's): a stop() during a slow sample returns while the thread
# is still in its tick.
JOIN_BOUNDED = FIXED.replace("self._thread.join()", "self._thread.join(timeout=0.05)")
assert JOIN_BOUNDED != FIXED

# Correct: stop() joins in steps of 50 ms, as long as the thread is alive: it returns only once it has ended.
JOIN_IN_STEPS = FIXED.replace(
    "            self._thread.join()\n",
    "            while self._thread.is_alive():\n                self._thread.join(timeout=0.05)\n",
)
assert JOIN_IN_STEPS != FIXED

# Wrong: the series is a window of the last 50 samples (the takeaways' long-running monitor), not the
# whole series the task asks for.
WINDOWED_SERIES = "import collections\n\n" + FIXED.replace(
    "        self.series = []\n", "        self.series = collections.deque(maxlen=50)\n"
)
assert "maxlen" in WINDOWED_SERIES

# Wrong: a busy-wait ticker: the thread spins on the clock and the stop flag, never waiting on anything;
# stop() is heard at once, but an idle monitor keeps a CPU busy.
BUSY_WAIT = FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        due = time.monotonic() + self.interval_s\n"
    "        while not self._stop.is_set():\n"
    "            if time.monotonic() >= due:\n"
    "                self.tick()\n                due += self.interval_s\n",
)
assert BUSY_WAIT != FIXED

# Evasive: sleeps in 1 ms slices as `acquire(timeout=...)` on a lock nobody releases: neither time.sleep nor
# a threading wait, so no profile hook sees it; stop() is heard only when a slice ends.
LOCK_SLICES = FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        pause = threading.Lock()\n        pause.acquire()\n"
    "        due = time.monotonic() + self.interval_s\n"
    "        while not self._stop.is_set():\n"
    "            pause.acquire(timeout=0.001)\n"
    "            if not self._stop.is_set() and time.monotonic() >= due:\n"
    "                self.tick()\n                due += self.interval_s\n",
)
assert LOCK_SLICES != FIXED

# Evasive: waits on the Event only when its thread has a profile hook (the grader watching); otherwise a
# time.sleep ticker that hears stop() only after a whole interval.
WAITS_WHEN_WATCHED = "import sys\n" + FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        watched = sys.getprofile() is not None\n"
    "        while not self._stop.is_set():\n"
    "            if watched:\n"
    "                if self._stop.wait(self.interval_s):\n                    return\n"
    "            else:\n"
    "                time.sleep(self.interval_s)\n"
    "                if self._stop.is_set():\n                    return\n"
    "            self.tick()\n",
)
assert WAITS_WHEN_WATCHED != FIXED

# Evasive: the same, with 1 ms slices on a lock nobody releases when unwatched: stop() is heard within a
# slice, so only how often the thread wakes tells it from a right one.
SLICES_UNLESS_WATCHED = WAITS_WHEN_WATCHED.replace(
    "                time.sleep(self.interval_s)\n"
    "                if self._stop.is_set():\n                    return\n",
    "                pause = threading.Lock()\n                pause.acquire()\n"
    "                due = time.monotonic() + self.interval_s\n"
    "                while not self._stop.is_set() and time.monotonic() < due:\n"
    "                    pause.acquire(timeout=0.001)\n"
    "                if self._stop.is_set():\n                    return\n",
)
assert SLICES_UNLESS_WATCHED != WAITS_WHEN_WATCHED

# Evasive: removes the profile hook from its own thread (`sys.setprofile(None)`), then sleeps in 1 ms
# time.sleep slices, looking at the stop flag in between.
UNHOOKS_AND_SLEEPS = "import sys\n" + FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        sys.setprofile(None)\n"
    "        due = time.monotonic() + self.interval_s\n"
    "        while not self._stop.is_set():\n"
    "            time.sleep(0.001)\n"
    "            if not self._stop.is_set() and time.monotonic() >= due:\n"
    "                self.tick()\n                due += self.interval_s\n",
)
assert UNHOOKS_AND_SLEEPS != FIXED

# Correct: 1 ms slices on the stop Event itself: a thousand wake-ups a second, but stop() wakes the slice in
# progress, so it is heard at once.
STOP_EVENT_FINE_SLICES = STOP_EVENT_SLICES.replace("min(0.02,", "min(0.001,")
assert STOP_EVENT_FINE_SLICES != STOP_EVENT_SLICES

# Correct: a `sched.scheduler` whose delay function is the stop Event's wait; each tick schedules the next.
SCHEDULED = "import sched\n\n" + FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        plan = sched.scheduler(time.monotonic, self._stop.wait)\n\n"
    "        def every():\n"
    "            if not self._stop.is_set():\n"
    "                self.tick()\n"
    "                plan.enter(self.interval_s, 0, every)\n\n"
    "        plan.enter(self.interval_s, 0, every)\n"
    "        while not self._stop.is_set():\n"
    "            due = plan.run(blocking=False)\n"
    "            if due is None:\n                return\n"
    "            self._stop.wait(due)\n",
)
assert SCHEDULED != FIXED

# Correct: the thread runs an asyncio loop of its own; stop() sets an asyncio.Event through
# call_soon_threadsafe (the loop's self-pipe wakes it), and joins.
EVENT_LOOP_THREAD = "import asyncio\n\n" + FIXED.replace(
    "        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
    "        loop = asyncio.new_event_loop()\n"
    "        try:\n            loop.run_until_complete(self._ticks())\n"
    "        finally:\n            loop.close()\n\n"
    "    async def _ticks(self):\n"
    "        self._halt = asyncio.Event()\n"
    "        self._loop = asyncio.get_running_loop()\n"
    "        self._ready.set()\n"
    "        while True:\n"
    "            try:\n"
    "                await asyncio.wait_for(self._halt.wait(), self.interval_s)\n"
    "                return\n"
    "            except TimeoutError:\n"
    "                self.tick()\n",
).replace("        self._stop.clear()\n", "        self._ready = threading.Event()\n").replace(
    "        self._thread.start()\n", "        self._thread.start()\n        self._ready.wait()\n"
).replace(
    "        self._stop.set()\n        if self._thread is not None:\n",
    "        if self._thread is not None:\n            self._loop.call_soon_threadsafe(self._halt.set)\n",
)
assert "call_soon_threadsafe" in EVENT_LOOP_THREAD and "self._stop" not in EVENT_LOOP_THREAD.split("def start")[1]

# Wrong: the same lock slices, of half a second (or to the next tick, if sooner): too few wake-ups for the
# kernel's count to tell (two a second), but stop() early in a wait takes most of a slice (red team 2, w13b).
LOCK_HALF_SECOND_SLICES = LOCK_SLICES.replace(
    "pause.acquire(timeout=0.001)", "pause.acquire(timeout=max(0.0, min(0.5, due - time.monotonic())))"
)
assert LOCK_HALF_SECOND_SLICES != LOCK_SLICES

# Wrong by the task's words (red team 2026-12-07 set 3: the same shape passed here and failed in lesson 08):
# stop() waits for an event the monitor's thread sets in its `finally:`, on its way out, instead of joining
# it: the thread still runs when the event is set, so it is alive as stop() returns.
DONE_EVENT = (
    FIXED.replace(
        "        self._stop = threading.Event()\n",
        "        self._stop = threading.Event()\n        self._done = threading.Event()\n",
    )
    .replace(
        "        self._stop.clear()\n",
        "        self._stop.clear()\n        self._done.clear()\n",
    )
    .replace(
        "            self._thread.join()\n",
        "            self._done.wait()\n",
    )
    .replace(
        "    def _run(self):\n        while not self._stop.wait(self.interval_s):\n            self.tick()\n",
        "    def _run(self):\n"
        "        try:\n"
        "            while not self._stop.wait(self.interval_s):\n"
        "                self.tick()\n"
        "        finally:\n"
        "            self._done.set()\n",
    )
)
assert DONE_EVENT.count("self._done") == 4 and "join" not in DONE_EVENT
