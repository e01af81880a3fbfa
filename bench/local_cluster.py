"""A real Dask scheduler and workers on 127.0.0.1, started from this environment's own ``dask`` command
(for the cluster tests and ``bench.cluster``).

Each worker runs under a nanny (``dask worker``'s default), which starts a new worker process when one
dies, as on a real cluster. Logs go to files in ``directory``. Stopping ends every process started here,
the nannies' worker processes included.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from pipeline.nightly.reaper import descendants, die_with_parent, end_processes

DASK = Path(sys.executable).parent / "dask"
START_TIMEOUT_SECONDS = 120


class LocalDaskCluster:
    def __init__(self, directory: Path, workers: int = 2, nthreads: int = 1):
        self.directory = Path(directory)
        self.workers = workers
        self.nthreads = nthreads
        self.address = ""
        self._scheduler: subprocess.Popen | None = None
        self._workers: list[subprocess.Popen] = []

    def _start(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = (self.directory / log_name).open("wb")
        return subprocess.Popen([str(DASK), *args], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent, close_fds=True)

    def __enter__(self) -> "LocalDaskCluster":
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            # port 0: the scheduler picks a free port and names it in its log
            self._scheduler = self._start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                                          "scheduler.log")
            self.address = self._wait_for_scheduler_address()
            for i in range(self.workers):
                self._workers.append(self._start(
                    ["worker", self.address, "--nthreads", str(self.nthreads), "--host", "127.0.0.1",
                     "--no-dashboard", "--name", f"worker-{i}", "--death-timeout", "60",
                     "--local-directory", str(self.directory / f"worker-{i}")], f"worker-{i}.log"))
            self.wait_for_workers(self.workers)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_for_scheduler_address(self) -> str:
        log = self.directory / "scheduler.log"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            found = re.search(r"Scheduler at:\s+(tcp://\S+)", log.read_text(errors="replace"))
            if found:
                return found.group(1)
            if self._scheduler.poll() is not None:
                raise RuntimeError(f"dask scheduler exited: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"dask scheduler named no address within {START_TIMEOUT_SECONDS} s (see {log})")

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=30, set_as_default=False)

    def wait_for_workers(self, count: int) -> None:
        with self.client() as client:
            client.wait_for_workers(count, timeout=START_TIMEOUT_SECONDS)

    def __exit__(self, *exc) -> None:
        started = [p for p in (*self._workers, self._scheduler) if p is not None]
        left = {pid: at for p in started for pid, at in descendants(p.pid).items()}  # the nannies' workers
        for process in started:  # workers first: they leave the scheduler cleanly
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        end_processes(left, grace_seconds=5)
