"""A real Dask cluster on loopback, for the cluster test and the class benchmark: a scheduler and
single-threaded workers, each a process of its own with its own working folder and temp folder (nothing
shared), started from this interpreter's environment as an instructor starts them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LocalCluster:
    address: Path  # the scheduler file, for `leaklab autograde --cluster`
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]


def _dask(*args: str, folder: Path) -> subprocess.Popen:
    (folder / "tmp").mkdir(parents=True)
    env = {**os.environ, "TMPDIR": str(folder / "tmp")}
    with (folder / "log.txt").open("w") as log:
        return subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=folder, env=env, stdout=log, stderr=log)


@contextlib.contextmanager
def local_cluster(base: Path, workers: int = 2, *, nanny: bool = True) -> Iterator[LocalCluster]:
    """Workers named worker-a, worker-b, ... in folders of those names under `base`. Without `nanny`, a
    killed worker stays dead."""
    address = base / "scheduler.json"
    scheduler = _dask(
        "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(address),
        folder=base / "scheduler",
    )  # fmt: skip
    started = [scheduler]
    try:
        deadline = time.monotonic() + 60
        while not address.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        for letter in "abcdefgh"[:workers]:
            folder = base / f"worker-{letter}"
            options = ["--nthreads", "1", "--nanny" if nanny else "--no-nanny", "--no-dashboard"]
            options += ["--name", folder.name, "--local-directory", str(folder / "dask")]
            started.append(_dask("worker", "--scheduler-file", str(address), *options, folder=folder))
        _wait_for_workers(address, workers)
        yield LocalCluster(address, scheduler, started[1:])
    finally:
        for process in started:  # a nanny ends its worker when told to, not when killed
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_workers(address: Path, count: int) -> None:
    from distributed import Client

    with Client(scheduler_file=str(address), timeout=60, set_as_default=False) as client:
        client.wait_for_workers(count, timeout=120)
