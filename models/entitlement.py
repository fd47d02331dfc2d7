"""The entitlement ledger: every event that gives or takes channel access, one row each.

A paid charge with the period it bought, an admin's grant, a refund that
takes a charge's period back, an admin's revocation. A member's expiry is
derived from these rows in order (``membership.entitlements.fold``) and cached
on ``memberships.expires_at`` in the same transaction that adds a row, so
payments, refunds, renewals, grants and reconciliation never overwrite each
other's effect: each only adds its row, and the expiry is derived again.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import AutoId, db, utcnow

PAID = "paid"          # a Stars charge: +days from the later of payment time and the current expiry
GRANT = "grant"        # an admin's grant: the same arithmetic
CARRIED = "carried"    # access that existed before this ledger did (migration 0005): until ``until``
REFUND = "refund"      # a refunded charge: its days taken back, never past the moment of the refund
REVOKE = "revoke"      # an admin's revocation: access ends at ``effective_at``

GIVING = (PAID, GRANT, CARRIED)


class Entitlement(db.Model):
    __tablename__ = "entitlements"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    user_id: Mapped[int] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))
    days: Mapped[int] = mapped_column(default=0)
    # A Stars subscription period ends at least here (Telegram's subscription_expiration_date).
    until: Mapped[datetime | None]
    charge_id: Mapped[str | None] = mapped_column(String(255))
    effective_at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        # One paid row and one refund row per charge, whoever records it first.
        Index("uq_entitlements_kind_charge", "kind", "charge_id", unique=True,
              postgresql_where=text("charge_id IS NOT NULL"), sqlite_where=text("charge_id IS NOT NULL")),
        Index("ix_entitlements_user_order", "user_id", "effective_at", "id"),
    )
