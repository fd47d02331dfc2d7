"""A Telegram user who has talked to the bot."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import db, utcnow


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # Telegram user id
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str] = mapped_column(String(128), default="")
    language_code: Mapped[str | None] = mapped_column(String(16))
    referral_source: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the user last passed pre-checkout: the sweep leaves alone anyone
    # whose payment may still be on its way.
    checkout_started_at: Mapped[datetime | None]
    # Flood control: updates counted in the minute that started at window_started_at.
    window_started_at: Mapped[datetime | None]
    updates_in_window: Mapped[int] = mapped_column(default=0, server_default="0")
    # When a send to the user was refused with 403 (they blocked the bot): broadcasts skip them.
    # Cleared when they talk to the bot again.
    blocked_at: Mapped[datetime | None]
