"""A client-side deadline on every PostgreSQL round trip.

``statement_timeout`` is enforced by the server, so it cannot help when the
server itself stops answering (a frozen VM, a black-holed network, SIGSTOP):
the kernel still accepts and acknowledges, and a blocking psycopg2 call waits
forever. psycopg2's wait callback hands the waiting to us; we wait with
``poll`` and a deadline, and give up with an OperationalError. psycopg2 then
closes that connection and SQLAlchemy treats it as a disconnect, so the
request answers 503 and the pool opens a fresh connection next time.
"""
from __future__ import annotations

import select
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import psycopg2
from psycopg2 import extensions

_local = threading.local()
_default_seconds: float | None = None
_connect_seconds: float | None = None


def install(default_seconds: float, connect_seconds: float) -> None:
    """Bound every round trip of every psycopg2 connection in this process.

    In this mode libpq's connect_timeout is not applied (psycopg2 connects
    asynchronously), so connecting gets its own, shorter deadline here.
    """
    global _default_seconds, _connect_seconds
    _default_seconds = default_seconds
    _connect_seconds = connect_seconds
    extensions.set_wait_callback(_wait_with_deadline)


@contextmanager
def unbounded() -> Iterator[None]:
    """For work that may legitimately run long in this thread (migrations)."""
    previous = getattr(_local, "seconds", _default_seconds)
    _local.seconds = None
    try:
        yield
    finally:
        _local.seconds = previous


def _wait_with_deadline(connection) -> None:
    seconds = getattr(_local, "seconds", _default_seconds)
    if seconds is not None and connection.status == extensions.STATUS_SETUP:
        seconds = min(seconds, _connect_seconds)
    deadline = None if seconds is None else time.monotonic() + seconds
    poller = select.poll()
    registered = None
    while True:
        state = connection.poll()
        if state == extensions.POLL_OK:
            return
        events = select.POLLIN if state == extensions.POLL_READ else select.POLLOUT
        if registered != events:
            poller.register(connection.fileno(), events | select.POLLERR | select.POLLHUP)
            registered = events
        timeout_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
        if not poller.poll(timeout_ms) and deadline is not None and time.monotonic() >= deadline:
            raise psycopg2.OperationalError(f"database did not answer within {seconds:.1f}s (client-side deadline)")
