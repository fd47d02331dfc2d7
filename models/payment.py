"""The payment ledger: one row per Stars charge, keyed by Telegram's charge id.

The primary key is what makes crediting exactly-once: a redelivered update, a
replayed charge and reconciliation all try to insert the same key, and only
the first insert credits anything.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import db, utcnow

PAID = "paid"
REFUNDING = "refunding"  # an admin asked; refundStarPayment is in the outbox
REFUNDED = "refunded"
# Paid, but matching no sale we can honour (a forged or unknown payload, a wrong
# amount): refunded, never kept silently.
UNMATCHED = "unmatched"


class Payment(db.Model):
    __tablename__ = "payments"

    charge_id: Mapped[str] = mapped_column(String(255), primary_key=True)  # telegram_payment_charge_id
    user_id: Mapped[int] = mapped_column(index=True)
    plan_id: Mapped[str] = mapped_column(String(16))
    stars: Mapped[int]
    invoice_payload: Mapped[str] = mapped_column(String(128))
    is_recurring: Mapped[bool] = mapped_column(default=False)
    subscription_expires_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=PAID)
    source: Mapped[str] = mapped_column(String(16))  # webhook | reconcile
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    refunded_at: Mapped[datetime | None]
