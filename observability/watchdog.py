"""Knowing what every thread is doing: in-flight updates, a stuck-request watchdog, stack dumps.

gthread's ``timeout`` is a heartbeat of the worker's main loop, so a request
thread stuck for hours never trips it. The watchdog notices such a request and
logs its stack and ``update_id``; ``format_all_stacks`` serves the worker-abort
hook and operators at 3 a.m.
"""
from __future__ import annotations

import logging
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
    reported: float = 0.0


# Thread ident -> the update that thread is handling. Plain dict operations are
# atomic under the GIL; readers take a snapshot with dict(...).
_in_flight: dict[int, InFlight] = {}


@contextmanager
def tracking(update_id: int) -> Iterator[None]:
    ident = threading.get_ident()
    _in_flight[ident] = InFlight(update_id, time.monotonic())
    try:
        yield
    finally:
        _in_flight.pop(ident, None)


def in_flight() -> dict[int, InFlight]:
    return dict(_in_flight)


def format_all_stacks() -> str:
    """Every thread's name, the update it is handling, and its stack."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    busy = in_flight()
    now = time.monotonic()
    parts = []
    for ident, frame in sys._current_frames().items():
        header = f"Thread {names.get(ident, '?')} (ident {ident})"
        if ident in busy:
            header += f" handling update_id={busy[ident].update_id} for {now - busy[ident].started:.1f}s"
        parts.append(header + ":\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(parts)


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
