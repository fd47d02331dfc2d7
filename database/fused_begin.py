"""A transaction whose BEGIN travels with its first statement: two round trips where psycopg2 makes three.

psycopg2 opens every transaction with a BEGIN of its own, a round trip before
the first statement. Here the driver is put in autocommit mode (so it sends
no BEGIN), the first statement goes with ``BEGIN;`` in front of it, in the
same message, and COMMIT follows on a clean exit. The transaction is as real
as any: if the worker dies before COMMIT, PostgreSQL rolls it back, so a
redelivered update finds nothing done (an autocommitted statement would
commit even when no one is left to answer Telegram).

The first statement runs straight on the driver, compiled once by
SQLAlchemy (``DriverStatement``): on this path SQLAlchemy's execution costs
about as much CPU as the round trip itself. Its parameters must therefore be
what the driver takes as they are (plain values, timezone-aware datetimes).

SQLAlchemy's ``isolation_level="AUTOCOMMIT"`` would cost a round trip of its
own when the connection returns to the pool (``SET
default_transaction_isolation``); psycopg2's ``autocommit`` attribute switches
both ways without one. Behind a transaction-mode pooler the time limits are
set with ``SET LOCAL`` as SQLAlchemy begins each transaction
(database/engine.py), so there, and on SQLite, the transaction is an
ordinary ``engine.begin()`` and ``fused`` is False.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Connection, Engine, Executable, exc

from database.engine import limits_need_a_transaction


class DriverStatement:
    """A statement compiled once for PostgreSQL, to run on the driver's cursor without SQLAlchemy."""

    def __init__(self, statement: Executable, engine: Engine):
        self._compiled = statement.compile(dialect=engine.dialect)
        self.sql_after_begin = "BEGIN; " + self._compiled.string

    def parameters(self, values: dict) -> dict:
        """The driver's parameters, named as the compiled SQL names them."""
        return self._compiled.construct_params(values)


@dataclass(frozen=True)
class FusedTransaction:
    connection: Connection
    fused: bool  # False: an ordinary transaction (SQLite, a transaction-mode pooler); use ``connection``

    def first_row(self, statement: DriverStatement, values: dict) -> tuple | None:
        """Run the transaction's first statement, BEGIN in front of it; its first row."""
        parameters = statement.parameters(values)
        with _as_sqlalchemy_errors(self.connection, statement.sql_after_begin, parameters):
            with self.connection.connection.driver_connection.cursor() as cursor:
                cursor.execute(statement.sql_after_begin, parameters)
                return cursor.fetchone()


@contextmanager
def transaction(engine: Engine) -> Iterator[FusedTransaction]:
    """A transaction committed on a clean exit and rolled back otherwise.

    When ``fused``, its first statement must be run with ``first_row``.
    """
    if engine.dialect.name != "postgresql" or limits_need_a_transaction(engine):
        with engine.begin() as connection:
            yield FusedTransaction(connection, fused=False)
        return
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        try:
            with _as_sqlalchemy_errors(connection, "(autocommit on)", None):
                driver.autocommit = True  # psycopg2 then sends no BEGIN of its own
            yield FusedTransaction(connection, fused=True)
            with _as_sqlalchemy_errors(connection, "COMMIT", None):
                _run(driver, "COMMIT")
        finally:
            _end_in_idle(connection, driver)


@contextmanager
def _as_sqlalchemy_errors(connection: Connection, statement: str, parameters: dict | None) -> Iterator[None]:
    """The driver's errors as SQLAlchemy raises them, a broken connection invalidated, as its own execution does.

    The webhook tells an outage (503, Telegram redelivers) from a bug (dead
    letter) by SQLAlchemy's exception types, and the pool must not lend out
    a connection the deadline or the network closed.
    """
    try:
        yield
    except psycopg2.Error as error:
        driver = connection.connection.driver_connection
        broken = bool(driver.closed) or connection.dialect.is_disconnect(error, driver, None)
        if broken:
            connection.invalidate(error)
        raise exc.DBAPIError.instance(statement, parameters, error, psycopg2.Error, hide_parameters=True,
                                      connection_invalidated=broken, dialect=connection.dialect) from error


def _end_in_idle(connection: Connection, driver) -> None:
    """Roll back whatever is still open, and hand the connection back as the pool lent it.

    Runs on the way out of a failure too, so it raises nothing: a connection
    it cannot clean is invalidated, and the pool discards it.
    """
    if connection.invalidated or driver.closed:
        return
    try:
        if driver.info.transaction_status != TRANSACTION_STATUS_IDLE:
            _run(driver, "ROLLBACK")  # psycopg2's rollback() does nothing in autocommit mode
        driver.autocommit = False
    except psycopg2.Error as error:
        connection.invalidate(error)


def _run(driver, command: str) -> None:
    """COMMIT or ROLLBACK straight on the driver."""
    with driver.cursor() as cursor:
        cursor.execute(command)
