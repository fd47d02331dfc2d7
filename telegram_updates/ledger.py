"""Exactly-once handling of Telegram updates, keyed by ``update_id``.

``claim_update`` inserts the ledger row in the update's own transaction: a
redelivery of a committed update finds it and is skipped; a redelivery racing
the first delivery waits on the row lock and then finds it; an update whose
transaction rolled back leaves no row and is handled again when redelivered.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete
from sqlalchemy.orm import Session

from database.upsert import run_prepared
from models.base import utcnow
from models.processed_update import ProcessedUpdate

# Telegram keeps undelivered updates for 24 hours; a week of ledger is ample.
LEDGER_RETENTION = timedelta(days=7)


def update_kind(raw: dict) -> str:
    """The update's one optional field, e.g. ``message`` or ``pre_checkout_query``."""
    for key in raw:
        if key != "update_id":
            return key[:40]
    return "empty"


def claim_update(session: Session | Connection, update_id: int, kind: str, now: datetime | None = None) -> bool:
    """True if this update is new and is now ours to handle in this transaction."""
    params = {"update_id": update_id, "kind": kind, "now": now or utcnow()}
    return run_prepared(session, "claim_update", claim_statement, params).first() is not None


def claim_statement(insert):
    """INSERT the ledger row unless it exists, RETURNING the id only when it was new."""
    table = ProcessedUpdate.__table__
    row = insert(table).values(update_id=bindparam("update_id"), kind=bindparam("kind"),
                               processed_at=bindparam("now", type_=table.c.processed_at.type))
    return row.on_conflict_do_nothing(index_elements=["update_id"]).returning(table.c.update_id)


def prune_ledger(session: Session, now: datetime | None = None) -> int:
    cutoff = (now or utcnow()) - LEDGER_RETENTION
    result = session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff))
    return result.rowcount or 0
