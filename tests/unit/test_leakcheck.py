from __future__ import annotations

import asyncio
import threading

import pytest

from leaklab import LeakError, no_leaks


async def wait_forever(event: asyncio.Event) -> None:
    await event.wait()


def test_passes_when_the_work_cleans_up():
    with no_leaks(timeout=0.5):
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()


def test_waits_for_a_thread_that_is_finishing():
    release = threading.Event()
    with no_leaks(timeout=5.0):
        threading.Thread(target=release.wait).start()
        threading.Timer(0.01, release.set).start()


def test_a_stuck_thread_fails_with_where_it_waits():
    release = threading.Event()

    def stuck_worker() -> None:
        release.wait()

    with pytest.raises(LeakError) as failure, no_leaks(timeout=0.05):
        threading.Thread(target=stuck_worker, name="stuck").start()
    release.set()
    assert failure.value.threads == 1 and failure.value.tasks == 0
    assert "1 @ thread" in failure.value.report
    assert "stuck_worker  " in failure.value.report and "test_leakcheck.py:" in failure.value.report


def test_async_check_lets_finishing_tasks_end():
    async def main():
        async with no_leaks(timeout=5.0):
            asyncio.get_running_loop().create_task(asyncio.sleep(0.01))

    asyncio.run(main())


def test_async_check_reports_stuck_tasks_grouped():
    async def main():
        event = asyncio.Event()
        try:
            async with no_leaks(timeout=0.05):
                tasks = [asyncio.create_task(wait_forever(event)) for _ in range(3)]
        finally:
            event.set()
            await asyncio.gather(*tasks)

    with pytest.raises(LeakError) as failure:
        asyncio.run(main())
    assert failure.value.tasks == 3
    assert "3 @ task" in failure.value.report and "wait_forever" in failure.value.report


def test_an_error_inside_the_block_is_not_masked():
    release = threading.Event()
    with pytest.raises(ZeroDivisionError), no_leaks(timeout=0.05):
        threading.Thread(target=release.wait).start()
        release.set()
        1 / 0  # noqa: B018
