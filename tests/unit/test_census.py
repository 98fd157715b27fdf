from __future__ import annotations

import asyncio
import threading

from leaklab import Census


def test_new_tasks_are_those_started_after_the_census():
    async def main():
        gate = asyncio.Event()
        before = asyncio.create_task(gate.wait())
        census = Census.take()
        after = [asyncio.create_task(gate.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        found = census.new_tasks()
        gate.set()
        await asyncio.gather(before, *after)
        return found, after, before

    found, after, _ = asyncio.run(main())
    assert set(found) == set(after)


def test_new_threads_are_those_started_after_the_census():
    release = threading.Event()
    census = Census.take()
    threads = [threading.Thread(target=release.wait) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        assert set(census.new_threads()) == set(threads)
    finally:
        release.set()
        for thread in threads:
            thread.join()
    assert census.new_threads() == []


def test_finished_tasks_do_not_count():
    async def main():
        census = Census.take()
        await asyncio.create_task(asyncio.sleep(0))
        return census.new_tasks()

    assert asyncio.run(main()) == []


def test_a_task_that_says_it_is_done_while_it_waits_still_counts():
    class QuietTask(asyncio.Task):
        def done(self):
            return True

    async def main():
        gate = asyncio.Event()
        census = Census.take()
        quiet = QuietTask(gate.wait())
        await asyncio.sleep(0)
        found = census.new_tasks()
        gate.set()
        for _ in range(3):  # the waiter's wake-up, then the task's last step
            await asyncio.sleep(0)
        return found, quiet, census.new_tasks()

    found, quiet, after = asyncio.run(main())
    assert (found, after) == ([quiet], [])
