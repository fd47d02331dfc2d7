"""Named leases: one holder at a time across workers and replicas, for a bounded time.

A row, not a session-level advisory lock, so it is safe behind a
transaction-mode PgBouncer and survives the holder's death (the lease runs
out). Used so that reconciliation runs once at a time everywhere.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import db


class Lease(db.Model):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
