"""What every update goes through before its handler: dedupe, and who sent it.

Both writes belong to the update's transaction. On PostgreSQL they travel as
one statement (two data-modifying CTEs), saving a round trip and a parse on
every update; elsewhere they are the two statements of ``ledger`` and
``users``.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from database.upsert import run_prepared
from models.base import utcnow
from telegram_updates.ledger import claim_statement, claim_update
from telegram_updates.users import new_row, remember_user, upsert_params, upsert_statement


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


def admit(session: Session, update_id: int, kind: str, sender: dict | None,
          now: datetime | None = None) -> int | None:
    """None for an update handled before; else the sender's updates this minute (0 without a sender)."""
    now = now or utcnow()
    if sender is None:
        return 0 if claim_update(session, update_id, kind, now) else None
    if session.get_bind().dialect.name != "postgresql":
        return remember_user(session, sender, now) if claim_update(session, update_id, kind, now) else None
    params = {"update_id": update_id, "kind": kind, **upsert_params(sender, now)}
    new, recent = run_prepared(session, "claim_and_remember", claim_and_remember_statement, params).one()
    return recent if new else None
