"""Messages the membership domain owes people: members, payers, the admins.

Queued in the caller's transaction like every other Bot API call, so a
message exists if and only if the change it tells of was committed. Alerts
that can come in floods (a lost admin right fails every invite) are sent at
most once per interval, across workers and replicas: a named lease is the
rate limit.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot_outbox import jobs
from database import leases
from models.base import utcnow
from settings import Settings


def tell(session: Session, user_id: int, text: str) -> None:
    jobs.enqueue_call(session, "sendMessage", {"chat_id": user_id, "text": text}, chat_id=user_id)


def tell_admins(session: Session, settings: Settings, text: str) -> None:
    for admin_id in sorted(settings.admin_ids):
        tell(session, admin_id, text)


def alert_admins(session: Session, settings: Settings, kind: str, text: str, *, at_most_every: timedelta) -> bool:
    """Tell the admins unless an alert of this ``kind`` went out within ``at_most_every``."""
    if not settings.admin_ids or not leases.acquire(session, f"alert:{kind}", leases.holder_id(), at_most_every):
        return False
    tell_admins(session, settings, text)
    return True


def describe_until(moment: datetime, now: datetime | None = None) -> str:
    return "has ended" if moment <= (now or utcnow()) else f"runs until {moment:%Y-%m-%d %H:%M} UTC"
