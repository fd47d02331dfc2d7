"""Payers on their way: who passed pre-checkout recently.

The expiry sweep spares anyone who passed pre-checkout in the last half hour
(their payment may be on its way), so the note is taken right after the
pre-checkout answer, best effort: without it, the sweep's grace period still
covers the payer.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from database.upsert import insert_for
from models.base import utcnow
from models.user import User


def remember_checkout(session: Session, user_id: int, now: datetime | None = None) -> None:
    now = now or utcnow()
    statement = insert_for(session, User).values(id=user_id, created_at=now, last_seen_at=now,
                                                 checkout_started_at=now, first_name="")
    session.execute(statement.on_conflict_do_update(index_elements=["id"], set_={"checkout_started_at": now}))
