"""What every update goes through before its handler: dedupe, and who sent it.

Both writes belong to the update's transaction. On PostgreSQL they travel as
one statement (two data-modifying CTEs), saving a round trip and a parse on
every update; elsewhere they are the two statements of ``ledger`` and
``users``. An update whose handler needs nothing else from the database is
admitted on a connection of its own, the BEGIN fused with that statement
(``admitted_alone``): no ORM session, and two round trips in all.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine, exists, select
from sqlalchemy.orm import Session

from database import fused_begin
from database.upsert import dialect_name, prepared, run_prepared
from models.base import utcnow
from telegram_updates.ledger import claim_statement, claim_update
from telegram_updates.users import new_row, remember_user, upsert_params, upsert_statement

_compiled: "weakref.WeakKeyDictionary[Engine, fused_begin.DriverStatement]" = weakref.WeakKeyDictionary()


def claim_and_remember_statement(insert):
    """The ledger claim and the user upsert as one statement: two data-modifying CTEs.

    The user is upserted only if the claim inserted a row, so a redelivery
    counts nothing against the sender's flood window. Built from the same
    pieces as the two separate statements (ledger.claim_statement and
    users.upsert_statement).
    """
    claimed = claim_statement(insert).cte("claimed")
    seen = upsert_statement(insert, new_row().select_from(claimed)).cte("seen")
    return select(exists(claimed.select()), select(seen.c.updates_in_window).scalar_subquery())


def admit(on: Session | Connection, update_id: int, kind: str, sender: dict | None,
          now: datetime | None = None) -> int | None:
    """None for an update handled before; else the sender's updates this minute (0 without a sender).

    ``on`` is the update's session, or a connection in its transaction.
    """
    now = now or utcnow()
    if sender is None:
        return 0 if claim_update(on, update_id, kind, now) else None
    if dialect_name(on) != "postgresql":
        return remember_user(on, sender, now) if claim_update(on, update_id, kind, now) else None
    params = {"update_id": update_id, "kind": kind, **upsert_params(sender, now)}
    new, recent = run_prepared(on, "claim_and_remember", claim_and_remember_statement, params).one()
    return recent if new else None


@contextmanager
def admitted_alone(engine: Engine, update_id: int, kind: str, sender: dict) -> Iterator[int | None]:
    """``admit`` in a transaction of its own, for an update whose handler needs nothing else from the database.

    The block (the handler) runs inside the transaction, which commits when
    the block ends cleanly. On PostgreSQL the intake's statement carries the
    BEGIN and runs on the driver (database/fused_begin.py): two round trips
    in all, where a session makes three.
    """
    with fused_begin.transaction(engine) as transaction:
        if not transaction.fused:
            yield admit(transaction.connection, update_id, kind, sender)
            return
        params = {"update_id": update_id, "kind": kind, **upsert_params(sender, utcnow())}
        new, recent = transaction.first_row(_driver_statement(engine), params)
        yield recent if new else None


def _driver_statement(engine: Engine) -> fused_begin.DriverStatement:
    """The combined intake statement, compiled once per engine (its datetimes are utcnow()'s: timezone-aware)."""
    statement = _compiled.get(engine)
    if statement is None:
        statement = _compiled[engine] = fused_begin.DriverStatement(
            prepared(engine.dialect.name, "claim_and_remember", claim_and_remember_statement), engine)
    return statement
