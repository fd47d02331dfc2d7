"""Updates whose handler failed with a bug: kept with the error for an operator.

They are acknowledged to Telegram (so one poisoned update does not block its
chat's queue) and can be replayed once the bug is fixed.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import AutoId, db, utcnow


class DeadLetter(db.Model):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    update_id: Mapped[int] = mapped_column(index=True)
    payload: Mapped[dict] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(String(500))
    traceback: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
