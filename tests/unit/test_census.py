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


def test_an_ended_threads_mark_does_not_run_under_the_thread_that_took_its_stack(monkeypatch):
    """An ident is a stack's address: a new thread may take an ended one's stack (and so its ident) while
    the kernel still lists the ended one's id, exiting, with no memory left. That mark is not running."""
    import io

    from leaklab import _census

    marks: list[_census.ThreadMark] = []
    ended = threading.Thread(target=lambda: marks.append(_census.thread_mark()))
    ended.start()
    ended.join()
    release = threading.Event()
    taker = threading.Thread(target=release.wait)
    taker.start()
    try:
        exiting = marks[0][1]  # the ended thread's id, as the kernel lists it for a moment more
        listed, opened = _census._listdir, _census._open
        monkeypatch.setattr(_census, "_listdir", lambda path: [*listed(path), str(exiting)])

        def stat_of(path, *args, **kwargs):
            if path == f"/proc/self/task/{exiting}/stat":  # as the kernel shows a thread past releasing its memory
                return io.StringIO(f"{exiting} (python) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 0")
            return opened(path, *args, **kwargs)

        monkeypatch.setattr(_census, "_open", stat_of)
        took_over = (taker.ident, exiting)  # the ended thread's mark, its ident now the taker's
        assert _census.running([took_over]) == set()
        assert _census.running([_census_mark(taker)]) == {_census_mark(taker)}
    finally:
        release.set()
        taker.join()


def test_the_os_lists_a_thread_threading_did_not_start_and_it_is_foreign_until_its_code_returns():
    """`_thread.start_new_thread` passes by `threading`: the OS lists it all the same (`os_threads`), and it is
    one of the `foreign_threads` while its code runs, unlike a `threading.Thread`; once its code has returned,
    it is foreign no more, however long the OS still lists it."""
    import _thread
    import time

    from leaklab import _census

    release = threading.Event()
    ids: dict[str, tuple[int, int]] = {}

    def wait(kind: str) -> None:
        ids[kind] = (threading.get_ident(), threading.get_native_id())
        release.wait()

    ended_before = _census.foreign_threads()
    _thread.start_new_thread(wait, ("raw",))
    started = threading.Thread(target=wait, args=("threading",))
    started.start()
    try:
        deadline = time.monotonic() + 10
        while len(ids) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert {ids["raw"][1], ids["threading"][1]} <= _census.os_threads()
        assert _census.foreign_threads() - ended_before == {ids["raw"][0]}
    finally:
        release.set()
        started.join()
    while ids["raw"][0] in _census.foreign_threads() and time.monotonic() < deadline:  # (its last steps)
        time.sleep(0.001)
    assert _census.foreign_threads() == ended_before
    while ids["raw"][1] in _census.os_threads() and time.monotonic() < deadline:  # gone, for the leak fixture
        time.sleep(0.001)


def _census_mark(thread: threading.Thread) -> tuple[int, int]:
    return thread.ident, thread.native_id  # type: ignore[return-value]
