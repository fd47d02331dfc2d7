"""The processes of the throwaway clusters: signalling them, waiting for them, finding leaks."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

from stack_harness.pg_scratch import session_dir

POLL_INTERVAL = 0.02


def is_gone(pid: int) -> bool:
    """Dead, or a zombie nobody will reap (init does not on these machines)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.kill(pid, sig)


def poll(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def server_processes(directory: Path | str | None = None) -> list[psutil.Process]:
    """Live processes whose working directory is inside ``directory``.

    Every postgres process chdirs into its data directory, so this finds the
    postmaster and all its backends even though backends rewrite their command
    line. Defaults to this process's whole scratch dir: empty means no leaks.
    """
    root = Path(directory) if directory is not None else session_dir()
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and Path(proc.cwd()).is_relative_to(root):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
