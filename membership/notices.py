"""Messages the membership domain owes people: members, payers, the admins.

Queued in the caller's transaction like every other Bot API call, so a
message exists if and only if the change it tells of was committed.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot_outbox import jobs
from models.base import utcnow
from settings import Settings


def tell(session: Session, user_id: int, text: str) -> None:
    jobs.enqueue_call(session, "sendMessage", {"chat_id": user_id, "text": text}, chat_id=user_id)


def tell_admins(session: Session, settings: Settings, text: str) -> None:
    for admin_id in sorted(settings.admin_ids):
        tell(session, admin_id, text)


def describe_until(moment: datetime, now: datetime | None = None) -> str:
    return "has ended" if moment <= (now or utcnow()) else f"runs until {moment:%Y-%m-%d %H:%M} UTC"
