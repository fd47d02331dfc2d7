"""One-time channel invite links, one per payment or grant.

The row exists from the moment access is granted (in that transaction); the
outbox job fills in ``link`` once Telegram has created it, so a retried job
reuses the link instead of making a second one.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import AutoId, db, utcnow

PENDING = "pending"
SENT = "sent"
JOINED = "joined"
REVOKED = "revoked"
FAILED = "failed"  # Telegram refused to make or send it: /link gives the member another


class Invite(db.Model):
    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    user_id: Mapped[int] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(String(255))  # the charge id, or "grant:<admin id>"
    link: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    joined_at: Mapped[datetime | None]
