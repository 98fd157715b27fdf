"""A real Dask cluster on loopback, for the cluster test and the class benchmark: a scheduler and
single-threaded workers, each a process of its own with its own working folder and temp folder (nothing
shared), started from this interpreter's environment as an instructor starts them."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


class LocalCluster:
    """Workers named worker-a, worker-b, ... in folders of those names under `base`; the scheduler on a
    fixed loopback port, so that a restarted one is found at the same address."""

    def __init__(self, base: Path, *, nanny: bool) -> None:
        self.base, self.nanny = base, nanny
        self.address = base / "scheduler.json"  # the scheduler file, for `leaklab autograde --cluster`
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._started: list[subprocess.Popen] = []

    def start_scheduler(self) -> None:
        self.address.unlink(missing_ok=True)
        options = ["--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard", "--scheduler-file"]
        self.scheduler = self._dask("scheduler", *options, str(self.address), folder=self.base / "scheduler")
        deadline = time.monotonic() + 60
        while not self.address.exists() and time.monotonic() < deadline:
            time.sleep(0.2)

    def add_worker(self) -> subprocess.Popen:
        folder = self.base / f"worker-{'abcdefghijklmnop'[len(self.workers)]}"
        options = ["--nthreads", "1", "--nanny" if self.nanny else "--no-nanny", "--no-dashboard"]
        options += ["--name", folder.name, "--local-directory", str(folder / "dask")]
        worker = self._dask("worker", "--scheduler-file", str(self.address), *options, folder=folder)
        self.workers.append(worker)
        return worker

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(scheduler_file=str(self.address), timeout=60, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=120)

    def stop(self) -> None:
        for process in self._started:  # a nanny ends its worker when told to, not when killed
            process.terminate()
        for process in self._started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _dask(self, *args: str, folder: Path) -> subprocess.Popen:
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(folder / "tmp")}
        with (folder / "log.txt").open("a") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "dask", *args], cwd=folder, env=env, stdout=log, stderr=log
            )
        self._started.append(process)
        return process


@contextlib.contextmanager
def local_cluster(base: Path, workers: int = 2, *, nanny: bool = True) -> Iterator[LocalCluster]:
    """A scheduler and `workers` workers, all ended on the way out. Without `nanny`, a killed worker
    stays dead."""
    cluster = LocalCluster(base, nanny=nanny)
    try:
        cluster.start_scheduler()
        for _ in range(workers):
            cluster.add_worker()
        if workers:
            cluster.wait_for_workers(workers)
        yield cluster
    finally:
        cluster.stop()
