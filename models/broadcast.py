"""An owner's message to many users, and who it was queued for.

A recipient row is written in the same transaction as its outbox job, and
(broadcast, user) is unique: running the broadcast again queues only the
users who have no row yet, so nobody gets it twice.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import AutoId, db, utcnow

ACTIVE = "active"
EXPIRED = "expired"
ALL = "all"
AUDIENCES = (ACTIVE, EXPIRED, ALL)

QUEUED = "queued"
SENT = "sent"
FAILED = "failed"  # Telegram refused it for good (the user blocked the bot, deleted their account)


class Broadcast(db.Model):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    audience: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BroadcastRecipient(db.Model):
    __tablename__ = "broadcast_recipients"

    # The primary key is the uniqueness that makes a resumed run send nobody a second copy.
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"), primary_key=True,
                                              autoincrement=False)
    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(2000))
