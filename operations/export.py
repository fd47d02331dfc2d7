"""``flask --app main export members|payments``: the owner's data as CSV, header row first.

Rows are streamed in primary-key order (``yield_per``), so a large ledger is
never held in memory; times are ISO 8601 in UTC.
"""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from typing import Iterable, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.membership import Membership
from models.payment import Payment
from models.user import User

BATCH = 1000

MEMBER_COLUMNS = ("user_id", "username", "first_name", "expires_at", "active", "referral_source", "joined_bot_at")
PAYMENT_COLUMNS = ("charge_id", "user_id", "plan_id", "stars", "status", "source", "is_recurring",
                   "subscription_expires_at", "created_at", "refunded_at")


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).isoformat()


def member_rows(session: Session, now: datetime) -> Iterable[tuple]:
    query = (select(Membership, User).outerjoin(User, User.id == Membership.user_id)
             .order_by(Membership.user_id).execution_options(yield_per=BATCH))
    for membership, user in session.execute(query):
        expires = membership.expires_at if membership.expires_at.tzinfo else \
            membership.expires_at.replace(tzinfo=timezone.utc)
        yield (membership.user_id, (user.username or "") if user else "", user.first_name if user else "",
               _iso(expires), "yes" if expires > now else "no",
               (user.referral_source or "") if user else "", _iso(user.created_at) if user else "")


def payment_rows(session: Session) -> Iterable[tuple]:
    query = select(Payment).order_by(Payment.created_at, Payment.charge_id).execution_options(yield_per=BATCH)
    for payment in session.scalars(query):
        yield (payment.charge_id, payment.user_id, payment.plan_id, payment.stars, payment.status, payment.source,
               "yes" if payment.is_recurring else "no", _iso(payment.subscription_expires_at),
               _iso(payment.created_at), _iso(payment.refunded_at))


def write(out: TextIO, header: tuple[str, ...], rows: Iterable[tuple]) -> int:
    """Write the header and rows; returns how many rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    written = 0
    for row in rows:
        writer.writerow(row)
        written += 1
    return written


def export(session: Session, what: str, out: TextIO, now: datetime | None = None) -> int:
    now = now or datetime.now(timezone.utc)
    if what == "members":
        return write(out, MEMBER_COLUMNS, member_rows(session, now))
    return write(out, PAYMENT_COLUMNS, payment_rows(session))
