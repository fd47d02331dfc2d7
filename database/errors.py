"""What counts as a database outage, and how a failure is told in one line.

The webhook answers 503 for an outage (Telegram redelivers, nothing is lost)
and stores a dead letter for a bug; the health probe and the outbox senders
log outages in one line each.
"""
from __future__ import annotations

from sqlalchemy import exc


def is_transient(error: BaseException) -> bool:
    """An outage of the database or the pool, as opposed to a bug.

    Telegram is told 503 for these and redelivers later; nothing is lost.
    """
    if isinstance(error, exc.TimeoutError):  # pool checkout timed out
        return True
    if isinstance(error, exc.DBAPIError):
        return bool(error.connection_invalidated) or isinstance(
            error, (exc.OperationalError, exc.InterfaceError)
        )
    return False


def is_outage(error: BaseException) -> bool:
    """The server did not answer at all (as opposed to answering with an error).

    A statement timeout, a deadlock or a lock timeout comes with a SQLSTATE
    from a server that is up: transient for the update, but no reason to
    treat the database as down.
    """
    if not isinstance(error, exc.DBAPIError) or isinstance(error, exc.TimeoutError):
        return False
    return is_transient(error) and getattr(error.orig, "pgcode", None) is None


def describe_error(error: BaseException) -> str:
    """One line, for logs and /health: the exception type and its first line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
