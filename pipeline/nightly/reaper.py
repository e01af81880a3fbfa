"""Nothing a run starts outlives it, even a run killed with SIGKILL.

A `complaints run` starts a temporary Prefect server and worker processes; killed with ``kill -9`` it
cannot stop them, and they are handed to init. ``watch_over_this_process`` starts a small watcher
(``python -m pipeline.nightly.reaper PID``) that notes the run's process tree twice a second and, once the run
is gone, ends every process of the last tree it saw (SIGTERM, then SIGKILL). Linux only (/proc); on
other systems it does nothing.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.5
GRACE_SECONDS = 5.0
PR_SET_PDEATHSIG = 1


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, None when it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """pid → start time of every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat:
                children.setdefault(stat[0], []).append(int(entry.name))
                started[int(entry.name)] = stat[1]
    found: dict[int, int] = {}
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        if child not in found:
            found[child] = started[child]
            stack.extend(children.get(child, []))
    return found


def end_processes(processes: dict[int, int], grace_seconds: float = GRACE_SECONDS) -> None:
    """SIGTERM each process that is still the one noted (same start time), SIGKILL those left after the grace."""
    def still_there() -> list[int]:
        return [pid for pid, started in processes.items() if (_stat(pid) or (0, None))[1] == started]

    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 0)):
        for pid in still_there():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while still_there() and time.monotonic() < deadline:
            time.sleep(0.1)


def watch(pid: int) -> None:
    started = (_stat(pid) or (0, None))[1]
    last_seen: dict[int, int] = {}
    while (_stat(pid) or (0, None))[1] == started and started is not None:
        last_seen = descendants(pid)
        last_seen.pop(os.getpid(), None)
        time.sleep(POLL_SECONDS)
    end_processes(last_seen)


def watch_over_this_process() -> None:
    """Start the watcher for the calling process (its own session, so a Ctrl-C meant for the run spares it)."""
    if not Path("/proc/self/stat").exists():
        return
    subprocess.Popen([sys.executable, "-m", "pipeline.nightly.reaper", str(os.getpid())], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (for pool workers)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    watch(int(sys.argv[1]))
