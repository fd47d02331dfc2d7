"""Payers on their way: who passed pre-checkout recently.

The expiry sweep spares anyone who passed pre-checkout in the last half hour
(their payment may be on its way), so the note is taken right after the
pre-checkout answer, best effort: without it, the sweep's grace period still
covers the payer.
"""
from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask
from sqlalchemy.orm import Session

from database.background import background_session
from database.errors import describe_error
from database.upsert import insert_for
from models.base import utcnow
from models.user import User

log = logging.getLogger(__name__)
# How long noting a checkout may wait for a background connection slot.
CHECKOUT_NOTE_WAIT = 0.25


def remember_checkout(session: Session, user_id: int, now: datetime | None = None) -> None:
    now = now or utcnow()
    statement = insert_for(session, User).values(id=user_id, created_at=now, last_seen_at=now,
                                                 checkout_started_at=now, first_name="")
    session.execute(statement.on_conflict_do_update(index_elements=["id"], set_={"checkout_started_at": now}))


def note_checkout(app: Flask, user_id: int) -> None:
    """Remember that ``user_id`` passed pre-checkout. Best effort, after the answer is sent.

    Runs as the response closes, on the request's thread but outside its app
    context, so it takes a background slot and an app context of its own, and
    waits for the slot only briefly: a burst of pre-checkouts must not hold
    request threads (the sweep's grace period covers a note not taken).
    """
    try:
        with background_session(app, app.extensions["background_slots"], wait=CHECKOUT_NOTE_WAIT) as session:
            remember_checkout(session, user_id)
            session.commit()
    except Exception as error:  # the payment goes on without this; the sweep's grace period covers it
        log.warning("could not note the checkout of user %s: %s", user_id, describe_error(error))
