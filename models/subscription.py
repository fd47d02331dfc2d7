"""A user's Stars subscription to a recurring plan: at most one per user.

Telegram renews it every 30 days and tells the bot of each renewal (a
payment), of a cancellation, a re-enabling or a failed renewal (the
``subscription`` update). The bot can stop renewals (``editUserStarSubscription``)
and re-enable ones it stopped. Access itself still comes from the
entitlement ledger; this row says whether and when it will be renewed.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import db, utcnow

PENDING = "pending"    # a subscription link was offered and not paid yet
ACTIVE = "active"      # renews on renews_at
CANCELED = "canceled"  # the user cancelled: access to the end of the period, then no renewal
FAILED = "failed"      # the renewal payment failed: access to the end of the period
STOPPED = "stopped"    # the bot stopped renewals (a refund, a revocation, an admin)

RENEWING = (ACTIVE,)


class Subscription(db.Model):
    __tablename__ = "subscriptions"

    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(16))
    plan_id: Mapped[str | None] = mapped_column(String(16))
    # The first payment's charge id: it names the subscription to editUserStarSubscription.
    charge_id: Mapped[str | None] = mapped_column(String(255))
    invoice_payload: Mapped[str | None] = mapped_column(String(128))
    renews_at: Mapped[datetime | None]  # Telegram's subscription_expiration_date
    # The subscription link offered while PENDING, handed out again instead of a second one.
    link: Mapped[str | None] = mapped_column(String(255))
    link_created_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
