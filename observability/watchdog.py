"""Knowing what every thread is doing: in-flight updates, a stuck-request watchdog, stack dumps.

gthread's ``timeout`` is a heartbeat of the worker's main loop, so a request
thread stuck for hours never trips it. The watchdog notices such a request and
logs its stack and ``update_id``; ``format_all_stacks`` serves the worker-abort
hook and operators at 3 a.m., who ask a running worker for it with SIGUSR2
(:func:`dump_stacks_on`, ``flask --app main stacks``).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

log = logging.getLogger(__name__)


@dataclass
class InFlight:
    update_id: int
    started: float
    user_id: int | None = None
    reported: float = 0.0


# Thread ident -> the update that thread is handling. Plain dict operations are
# atomic under the GIL; readers take a snapshot with dict(...).
_in_flight: dict[int, InFlight] = {}


@contextmanager
def tracking(update_id: int, user_id: int | None = None) -> Iterator[None]:
    """Mark this thread busy with an update: for stack dumps, the watchdog and log lines."""
    ident = threading.get_ident()
    _in_flight[ident] = InFlight(update_id, time.monotonic(), user_id)
    try:
        yield
    finally:
        _in_flight.pop(ident, None)


def in_flight() -> dict[int, InFlight]:
    return dict(_in_flight)


def format_all_stacks(skip_current: bool = False) -> str:
    """Every thread's name, the update it is handling, and its stack."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    busy = in_flight()
    now = time.monotonic()
    parts = []
    for ident, frame in sys._current_frames().items():
        if skip_current and ident == threading.get_ident():
            continue
        header = f"Thread {names.get(ident, '?')} (ident {ident})"
        if ident in busy:
            header += f" handling update_id={busy[ident].update_id} for {now - busy[ident].started:.1f}s"
        parts.append(header + ":\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(parts)


def dump_stacks_on(signum: int) -> None:
    """Log every thread's stack (with the update it handles) when the process gets ``signum``.

    The handler only starts a thread: logging takes locks, and a signal
    handler that waits on a lock the interrupted code holds never returns.
    """
    def dump() -> None:
        log.warning("stack dump (%s) of worker %s; every thread follows\n%s",
                    signal.Signals(signum).name, os.getpid(), format_all_stacks(skip_current=True))

    def on_signal(_signum, _frame) -> None:
        threading.Thread(target=dump, name="stack-dump", daemon=True).start()

    signal.signal(signum, on_signal)
    signal.siginterrupt(signum, False)


class Watchdog:
    """Logs the stack of any update handled for longer than ``threshold`` seconds."""

    def __init__(self, threshold: float):
        self._threshold = threshold
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        interval = max(0.05, min(self._threshold / 4, 5.0))
        while not self._stopping.wait(interval):
            self.check()

    def check(self) -> None:
        now = time.monotonic()
        frames = sys._current_frames()
        for ident, entry in in_flight().items():
            running = now - entry.started
            if running < self._threshold or now - entry.reported < self._threshold:
                continue
            entry.reported = now
            frame = frames.get(ident)
            stack = "".join(traceback.format_stack(frame)) if frame else "(thread gone)\n"
            log.error("stuck request: update_id=%s running for %.1fs in thread %s; stack:\n%s",
                      entry.update_id, running, _thread_name(ident), stack)


def _thread_name(ident: int) -> str:
    return next((thread.name for thread in threading.enumerate() if thread.ident == ident), str(ident))
