"""Who has access to the channel, and until when.

``reminded_for`` and ``removed_for`` hold the expiry they were done for: the
sweep claims a row by moving them to the current ``expires_at`` in one
UPDATE, so each reminder and each removal happens once per expiry, however
many workers sweep at the same time, and again after a renewal expires.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import false
from sqlalchemy.orm import Mapped, mapped_column

from models.base import db, utcnow


class Membership(db.Model):
    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    reminded_for: Mapped[datetime | None]
    removed_for: Mapped[datetime | None]
    # Whether the member is in the channel, as the last chat_member update said:
    # a renewal for someone in it needs a receipt, not a new invite link.
    in_channel: Mapped[bool] = mapped_column(default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
