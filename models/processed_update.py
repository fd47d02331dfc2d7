"""The dedupe ledger: one row per Telegram update whose effects are committed.

The row is written in the same transaction as the update's effects, so an
update is either fully handled and recorded, or neither; a redelivery finds
the row and does nothing.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import db, utcnow


class ProcessedUpdate(db.Model):
    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(40))
    processed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
