"""Talking to a running throwaway cluster: addresses, databases, admin SQL, who is connected.

``PgAdmin`` is a mixin of ``PgCluster``; databases come from
pytest-postgresql's ``DatabaseJanitor`` (see ``stack_harness.pg_cluster``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import psycopg
from pytest_postgresql.janitor import DatabaseJanitor

ADMIN_CONNECT_TIMEOUT = 5


@dataclass(frozen=True)
class Backend:
    """One client connection, as ``pg_stat_activity`` shows it."""

    pid: int
    datname: str | None
    usename: str | None
    application_name: str
    state: str | None
    wait_event_type: str | None
    wait_event: str | None
    xact_age: datetime.timedelta | None
    state_age: datetime.timedelta | None
    query: str

    @property
    def idle_in_transaction(self) -> bool:
        """Covers 'idle in transaction' and 'idle in transaction (aborted)'."""
        return bool(self.state and self.state.startswith("idle in transaction"))


_STATS_SQL = """
    SELECT pid, datname, usename, application_name, state, wait_event_type, wait_event,
           now() - xact_start, now() - state_change, query
    FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
    ORDER BY pid
"""


class PgAdmin:
    """Mixin: the class sets ``host``, ``port`` and ``superuser``; the server may be stopped."""

    host: str
    port: int
    superuser: str

    # ----- addresses -------------------------------------------------------

    def url(self, dbname: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL, e.g. ``postgresql+psycopg2://postgres@127.0.0.1:PORT/bot``."""
        return f"{driver}://{self.superuser}@{self.host}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq keyword/value string, for psycopg2.connect / psycopg.connect."""
        return f"host={self.host} port={self.port} user={self.superuser} dbname={dbname}"

    # ----- databases and admin SQL ------------------------------------------

    def _janitor(self, name: str, template: str | None = None) -> DatabaseJanitor:
        return DatabaseJanitor(
            user=self.superuser,
            host=self.host,
            port=self.port,
            dbname=name,
            template_dbname=template,
            connection_timeout=10,
        )

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create ``name`` (copied from ``template`` if given); returns ``name``."""
        self._janitor(name, template).init()
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name`` even if clients are connected (they are terminated). No-op if absent."""
        self._janitor(name).drop()

    def execute(self, sql: str, params: Any = None, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one admin statement in autocommit; return its rows ([] if none).

        Fails after ``ADMIN_CONNECT_TIMEOUT`` seconds instead of hanging when
        the cluster is stopped or frozen.
        """
        with psycopg.connect(self.dsn(dbname), connect_timeout=ADMIN_CONNECT_TIMEOUT, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []

    # ----- observation -----------------------------------------------------

    def stats(self, dbname: str | None = None) -> list[Backend]:
        """Client connections (not ours, not background workers), optionally for one database."""
        backends = [Backend(*row) for row in self.execute(_STATS_SQL)]
        return [b for b in backends if dbname is None or b.datname == dbname]

    def connection_count(self, dbname: str | None = None, state: str | None = None) -> int:
        """Client connections, optionally only to ``dbname`` and/or in ``state``
        ('active', 'idle', 'idle in transaction', ...)."""
        return sum(1 for b in self.stats(dbname) if state is None or b.state == state)

    def idle_in_transaction(self, dbname: str | None = None) -> list[Backend]:
        """Connections holding a transaction open while doing nothing (leaked sessions)."""
        return [b for b in self.stats(dbname) if b.idle_in_transaction]
