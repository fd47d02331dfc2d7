"""INSERT ... ON CONFLICT for both databases we run on, built once per dialect.

The hot path (dedupe row, user upsert) runs two statements per update. Built
afresh with literal values, each would cost SQLAlchemy a new cache key walk
and an ORM bulk-insert round of bookkeeping on every request; built once with
bound parameters and run on the session's Core connection, they cost little
more than the round trip.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import Executable
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_built: dict[tuple[str, str], Executable] = {}


def insert_for(session: Session, table):
    """The dialect's insert construct, which knows ``on_conflict_do_*``."""
    return _INSERTS[session.get_bind().dialect.name](table)


def run_prepared(session: Session, name: str, build: Callable[[Callable], Executable], params: dict):
    """Execute statement ``name`` (made by ``build(insert)`` once per dialect) in the session's transaction."""
    connection = session.connection()
    key = (name, connection.dialect.name)
    statement = _built.get(key)
    if statement is None:
        statement = _built[key] = build(_INSERTS[connection.dialect.name])
    return connection.execute(statement, params)
