"""How far reconciliation has read Telegram's Stars transactions.

``getStarTransactions`` lists transactions oldest first, paged by offset, so
the number already applied is where the next run starts: each run reads
only what is new, and ``reconcile --full`` starts again from zero.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import db, utcnow

RECONCILE = "reconcile"


class StarTransactionsCursor(db.Model):
    __tablename__ = "star_transaction_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    applied: Mapped[int] = mapped_column(default=0)  # transactions read and applied, from the oldest
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
