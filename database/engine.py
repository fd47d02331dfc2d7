"""Engine options derived from the settings, and the limits every connection runs with.

The pool is sized by ``settings.Settings`` against the connection budget;
here it gets the timeouts that make it fail fast instead of queueing for
30 s, and each transaction gets server-side time limits.
"""
from __future__ import annotations

import os
import time
import weakref

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

from database import deadline
from settings import Settings

# A connection idle longer than this is checked with a round trip before use.
PING_AFTER_IDLE_SECONDS = 10.0
# Engines whose time limits are set at the start of each transaction (behind a transaction-mode pooler).
_limited_per_transaction: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def engine_options(settings: Settings) -> dict:
    if settings.is_local:
        return {
            "connect_args": {"timeout": 5, "check_same_thread": False},
            "pool_size": settings.pool_size,
            "max_overflow": settings.max_overflow,
            "pool_timeout": settings.db_pool_timeout,
        }
    connect_args = {
        "connect_timeout": settings.db_connect_timeout,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    if not settings.db_pooled:
        # Direct to PostgreSQL: the limits travel once, as startup options.
        connect_args["options"] = (f"-c statement_timeout={settings.db_statement_timeout_ms} "
                                   f"-c idle_in_transaction_session_timeout={settings.db_idle_in_transaction_timeout_ms}")
    return {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_recycle": settings.db_pool_recycle,
        "connect_args": connect_args,
    }


def install_timeouts(engine: Engine, settings: Settings) -> None:
    """Bound every transaction on the server side, and every round trip on ours.

    Behind a transaction-mode PgBouncer, startup options get the client
    disconnected and session settings leak to other clients, so the limits
    are set with ``SET LOCAL`` at the start of each transaction (one round
    trip); direct connections carry them as startup options (engine_options).
    """
    if engine.dialect.name == "sqlite":
        _install_sqlite_pragmas(engine)
        return
    if settings.db_pooled:
        statement = (
            f"SET LOCAL statement_timeout = {int(settings.db_statement_timeout_ms)}; "
            f"SET LOCAL idle_in_transaction_session_timeout = {int(settings.db_idle_in_transaction_timeout_ms)}"
        )
        _limited_per_transaction.add(engine)

        @event.listens_for(engine, "begin")
        def _limit_transaction(connection):
            connection.exec_driver_sql(statement)

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, _record, cargs, cparams):
        # application_name is a startup parameter (PgBouncer passes it on), set
        # per connection so it names the worker that opened it, not the master.
        cparams["application_name"] = f"bot-worker-{os.getpid()}"
        return deadline.connect(dialect, cargs, cparams, round_trip_seconds=settings.db_client_timeout,
                                connect_seconds=settings.db_connect_timeout)

    _ping_after_idle(engine)


def limits_need_a_transaction(engine: Engine) -> bool:
    """True where the time limits travel as SET LOCAL at BEGIN: a statement outside a transaction has none."""
    return engine in _limited_per_transaction


def _ping_after_idle(engine: Engine) -> None:
    """Pre-ping, but only connections that sat idle: a busy pool pays no extra round trip.

    A connection reused within seconds is as good as the last statement that
    succeeded on it; one idle for longer may have been cut (database restart,
    a NAT dropping it). If the ping fails, SQLAlchemy discards the connection
    and checks out a fresh one, as pool_pre_ping would.
    """
    @event.listens_for(engine, "checkin")
    def _remember_when(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(f"idle connection failed its ping: {error}") from error


def _install_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
