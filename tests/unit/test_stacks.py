from __future__ import annotations

import asyncio
import threading

from leaklab import format_groups, group_stacks


async def stuck_on_put(queue: asyncio.Queue) -> None:
    await queue.put(1)


async def stuck_on_event(event: asyncio.Event) -> None:
    await event.wait()


def test_identical_stacks_fold_into_groups_biggest_first():
    async def main():
        full: asyncio.Queue = asyncio.Queue(maxsize=1)
        full.put_nowait(0)
        event = asyncio.Event()
        tasks = [asyncio.create_task(stuck_on_put(full)) for _ in range(3)]
        tasks += [asyncio.create_task(stuck_on_event(event)) for _ in range(2)]
        await asyncio.sleep(0)
        groups = group_stacks(tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return groups

    groups = asyncio.run(main())
    assert [(g.kind, g.count) for g in groups] == [("task", 3), ("task", 2)]
    put, wait = groups
    assert put.frames[-1].function == "stuck_on_put"  # innermost first, the task's own coroutine last
    assert put.frames[-1].file.endswith("test_stacks.py")
    assert put.frames[-1].line == stuck_on_put.__code__.co_firstlineno + 1
    assert put.frames[0].function == "put" and put.frames[0].file == "asyncio/queues.py"
    assert wait.frames[-1].function == "stuck_on_event"


def test_threads_are_grouped_with_their_blocking_frame():
    release = threading.Event()
    threads = [threading.Thread(target=release.wait) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        groups = group_stacks(threads=threads)
    finally:
        release.set()
        for thread in threads:
            thread.join()
    assert [(g.kind, g.count) for g in groups] == [("thread", 2)]
    assert any(f.function == "wait" and f.file == "threading.py" for f in groups[0].frames)


def test_report_has_pprof_debug1_shape():
    async def main():
        full: asyncio.Queue = asyncio.Queue(maxsize=1)
        full.put_nowait(0)
        tasks = [asyncio.create_task(stuck_on_put(full)) for _ in range(4)]
        await asyncio.sleep(0)
        report = format_groups(group_stacks(tasks), title="stuck")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return report

    lines = asyncio.run(main()).splitlines()
    assert lines[0] == "stuck: total 4 (4 tasks, 0 threads)"
    assert lines[2].startswith("4 @ task waiting on ")
    assert lines[3].startswith("#\tput  asyncio/queues.py:")
    assert "stuck_on_put" in lines[-1] and "test_stacks.py:" in lines[-1]
