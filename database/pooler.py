"""Checking at start that the timeouts sent as startup options reach PostgreSQL.

Whether DATABASE_URL goes through a transaction-mode pooler is decided from
the configuration (settings/loading.py): a plain connection through
PgBouncer cannot be told from one to PostgreSQL (it passes the server's
``server_version`` and ``application_name`` on). What can be recognised is
a pooler refusing or swallowing the startup options of a server that took
itself for direct: PgBouncer disconnects it with ``unsupported startup
parameter: options``, or, with ``ignore_startup_parameters = options``,
drops them silently and every transaction runs without a time limit. One
connection at start, as a worker opens it, finds either and turns it into
one line, instead of a worker failing every request.

It does not switch to pooled mode by itself: the settings are read once and
frozen, and guessing at runtime would hide a missing DATABASE_UNPOOLED_URL.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from settings import Settings

# What PgBouncer says when it disconnects a client for its startup options.
REFUSAL = "unsupported startup parameter"
# An explicit instruction: the operator's fix, in the order it is most likely needed.
FIX = ("set DB_POOLED=true, and reference DATABASE_UNPOOLED_URL (the direct connection) "
       "for migrations and their advisory lock")


def refuses_startup_options(error: BaseException) -> bool:
    return REFUSAL in str(error)


def startup_options_problem(engine: Engine, settings: Settings) -> str | None:
    """Why the startup options do not reach PostgreSQL, in one line, or None when they do.

    Only a direct configuration sends startup options; a pooled one sets its
    limits per transaction and has nothing to check. Errors other than the
    pooler's refusal (a database still starting) are raised for the caller's wait.
    """
    if settings.is_local or settings.db_pooled:
        return None
    chosen = "DB_POOLED=false" if settings.db_pooled_by else "DATABASE_URL looked direct"
    try:
        with engine.connect() as connection:
            applied = connection.execute(
                text("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")).scalar()
            connection.rollback()
    except OperationalError as error:
        if refuses_startup_options(error):
            return (f"DATABASE_URL refused the timeouts sent as startup options ({REFUSAL}: options), "
                    f"as PgBouncer does, but the server runs direct ({chosen}): {FIX}")
        raise
    finally:
        engine.dispose()  # the gunicorn master keeps no connection for its workers to inherit
    if applied != str(settings.db_statement_timeout_ms):
        return (f"DATABASE_URL dropped the timeouts sent as startup options (statement_timeout is {applied}, "
                f"not {settings.db_statement_timeout_ms} ms), as PgBouncer with ignore_startup_parameters=options "
                f"does, and the server runs direct ({chosen}): {FIX}")
    return None
