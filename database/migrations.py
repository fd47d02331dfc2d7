"""The schema's migrations: Flask-Migrate, and bringing the schema to head at start.

Every replica migrates at start, safely at once: the serialization lives in
migrations/env.py (a transaction-level advisory lock); here we only wait out
a database that is still starting.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import flask_migrate
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from database import pooler
from database.errors import describe_error
from models.base import db
from settings import settings_of

log = logging.getLogger(__name__)

# Bound to the app and the migrations directory by the factory.
migrate = flask_migrate.Migrate()


class DatabaseUnreachable(RuntimeError):
    """The database did not answer within the start-up wait; the message is one line."""


def upgrade_to_head(app: Flask, wait_seconds: float = 60.0) -> None:
    """Migrate, waiting up to ``wait_seconds`` for a database that is still starting.

    Says once that it is waiting (not every two seconds), and gives up with
    :class:`DatabaseUnreachable`, one line, rather than a driver traceback.
    So does a pooler that refuses or drops the workers' startup options
    (database/pooler.py): at once, as waiting would not change it.
    """
    started = time.monotonic()
    warned = False
    while True:
        try:
            with app.app_context():
                problem = pooler.startup_options_problem(db.engine, settings_of(app))
                if problem:
                    raise DatabaseUnreachable(problem)
                flask_migrate.upgrade()
            return
        except OperationalError as error:
            waited = time.monotonic() - started
            if waited >= wait_seconds:
                raise DatabaseUnreachable(
                    f"database unreachable after {waited:.0f}s (DB_WAIT_AT_START_SECONDS={wait_seconds:g}): "
                    f"{describe_error(error)}") from None
            if not warned:
                log.warning("database not reachable yet; waiting up to %gs: %s", wait_seconds, describe_error(error))
                warned = True
            time.sleep(min(2.0, max(0.1, wait_seconds - waited)))  # a start-up back-off, not synchronisation


@dataclass(frozen=True)
class SchemaState:
    current: tuple[str, ...]  # the revisions the database is at (empty: never migrated)
    heads: tuple[str, ...]  # the revisions this code brings it to

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.heads)


def schema_state(connection: Connection) -> SchemaState:
    """Alembic's current against its head, read without changing anything (app context needed)."""
    config = migrate.get_config()
    heads = ScriptDirectory.from_config(config).get_heads()
    current = MigrationContext.configure(connection).get_current_heads()
    return SchemaState(tuple(sorted(current)), tuple(sorted(heads)))
