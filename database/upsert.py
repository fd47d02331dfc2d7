"""INSERT ... ON CONFLICT for both databases we run on, built once per dialect.

The hot path (dedupe row, user upsert) runs two statements per update. Built
afresh with literal values, each would cost SQLAlchemy a new cache key walk
and an ORM bulk-insert round of bookkeeping on every request; built once with
bound parameters and run on the session's Core connection, they cost little
more than the round trip.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import Connection, Executable
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_built: dict[tuple[str, str], Executable] = {}


def dialect_name(on: Session | Connection) -> str:
    """``postgresql`` or ``sqlite``: what a session or a connection talks to."""
    return (on if isinstance(on, Connection) else on.get_bind()).dialect.name


def insert_for(session: Session, table):
    """The dialect's insert construct, which knows ``on_conflict_do_*``."""
    return _INSERTS[dialect_name(session)](table)


def run_prepared(on: Session | Connection, name: str, build: Callable[[Callable], Executable], params: dict):
    """Execute statement ``name`` (made by ``build(insert)`` once per dialect) on a Core connection.

    ``on`` is a session (the statement joins its transaction) or a connection.
    """
    connection = on if isinstance(on, Connection) else on.connection()
    return connection.execute(prepared(connection.dialect.name, name, build), params)


def prepared(dialect_name: str, name: str, build: Callable[[Callable], Executable]) -> Executable:
    """Statement ``name``, made by ``build(insert)`` once per dialect."""
    key = (name, dialect_name)
    statement = _built.get(key)
    if statement is None:
        statement = _built[key] = build(_INSERTS[dialect_name])
    return statement
