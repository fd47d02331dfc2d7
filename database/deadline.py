"""A client-side deadline on every round trip of the server's PostgreSQL connections.

``statement_timeout`` is enforced by the server, so it cannot help when the
server itself stops answering (a frozen VM, a black-holed network, SIGSTOP):
the kernel still accepts and acknowledges, and a blocking psycopg2 call waits
forever. psycopg2's wait callback hands the waiting to us; for connections
opened through :func:`connect` we wait with ``poll`` and a deadline and give
up with an OperationalError. psycopg2 then closes that connection and
SQLAlchemy treats it as a disconnect, so the request answers 503 and the pool
opens a fresh connection next time. Other psycopg2 connections in the
process (migrations, tools) keep waiting as long as they need.
"""
from __future__ import annotations

import select
import threading
import time
import weakref

import psycopg2
from psycopg2 import extensions

# psycopg2 connection -> seconds one round trip may take.
_deadlines: "weakref.WeakKeyDictionary[object, float]" = weakref.WeakKeyDictionary()
_connecting = threading.local()  # the deadline for a connection being opened by this thread
_installed = False


def connect(dialect, cargs, cparams, *, round_trip_seconds: float, connect_seconds: float):
    """Open a connection whose every round trip is bounded (use from a do_connect event).

    psycopg2 connects asynchronously in this mode, so libpq's connect_timeout
    does not apply: ``connect_seconds`` bounds the connect instead.
    """
    _install()
    _connecting.seconds = connect_seconds
    try:
        connection = dialect.connect(*cargs, **cparams)
    finally:
        _connecting.seconds = None
    _deadlines[connection] = round_trip_seconds
    return connection


def _libpq_connect_timeout(connection) -> float | None:
    """Waiting through this callback, libpq no longer applies connect_timeout itself."""
    try:
        value = extensions.parse_dsn(connection.dsn).get("connect_timeout")
        return max(2.0, float(value)) if value and float(value) > 0 else None
    except (psycopg2.ProgrammingError, ValueError):
        return None


def _install() -> None:
    global _installed
    if not _installed:
        extensions.set_wait_callback(_wait)
        _installed = True


def _wait(connection) -> None:
    seconds = _deadlines.get(connection)
    if seconds is None and connection.status == extensions.STATUS_SETUP:
        seconds = getattr(_connecting, "seconds", None) or _libpq_connect_timeout(connection)
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
            raise psycopg2.OperationalError(
                f"timeout expired: the database did not answer within {seconds:.1f}s (client-side deadline)")
