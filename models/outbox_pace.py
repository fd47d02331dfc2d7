"""Telegram's overall pace, as one schedule every sender of every replica reads and moves.

One row per pace (the bot has one, ``telegram``): ``next_turn_at`` is the
earliest moment the next Bot API call may go out, on the database's clock,
in seconds since the epoch. A float rather than a timestamp so that the one
statement that moves it is plain arithmetic on PostgreSQL and SQLite alike
(``to_timestamp(next_turn_at)`` reads it in psql). ``bot_outbox.pacing``
explains the scheme.
"""
from __future__ import annotations

from sqlalchemy import Double, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import db


class OutboxPace(db.Model):
    __tablename__ = "outbox_pace"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    # When a turn was last asked for, and the next turn free after it (database clock, epoch seconds).
    asked_at: Mapped[float] = mapped_column(Double)
    next_turn_at: Mapped[float] = mapped_column(Double)
