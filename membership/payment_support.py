"""/paysupport and /terms: what Telegram asks of every bot that takes payments.

Telegram's support does not handle disputes with a bot, so the bot answers
them: the support text with the payer's recent payments (what an admin needs
to find them), and the same sent to the admins.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership import notices
from models.payment import Payment
from settings import Settings

RECENT_PAYMENTS = 5


def support(session: Session, settings: Settings, user_id: int, name: str) -> str:
    """The answer to /paysupport; the admins get the same list of payments."""
    payments = recent_payments(session, user_id)
    listing = "\n".join(f"- {p.charge_id}: {p.created_at:%Y-%m-%d %H:%M} UTC, {p.stars} Stars, {p.status}"
                        for p in payments) or "- no payments yet"
    notices.tell_admins(session, settings, f"/paysupport from {name} (user {user_id}). Their payments:\n{listing}")
    return f"{settings.support_text}\n\nYour recent payments:\n{listing}"


def recent_payments(session: Session, user_id: int) -> list[Payment]:
    return list(session.scalars(select(Payment).where(Payment.user_id == user_id)
                                .order_by(Payment.created_at.desc()).limit(RECENT_PAYMENTS)))
