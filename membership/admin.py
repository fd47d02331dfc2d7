"""Who the admins are, and the figures they see. Checked on every call.

Grants and revocations are in ``membership.access``, refunds in ``membership.refunds``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.membership import Membership
from models.payment import PAID, Payment
from settings import Settings

MAX_GRANT_DAYS = 3660


@dataclass(frozen=True)
class Stats:
    active_members: int
    payments_30d: int
    stars_30d: int
    payments_total: int
    stars_total: int


def is_admin(settings: Settings, user_id: int) -> bool:
    return user_id in settings.admin_ids


def stats(session: Session, now: datetime | None = None) -> Stats:
    now = now or utcnow()
    active = session.scalar(select(func.count()).select_from(Membership).where(Membership.expires_at > now))
    kept = Payment.status == PAID  # refunded and refunding charges are not revenue
    recent = session.execute(select(func.count(), func.coalesce(func.sum(Payment.stars), 0))
                             .where(kept, Payment.created_at > now - timedelta(days=30))).one()
    total = session.execute(select(func.count(), func.coalesce(func.sum(Payment.stars), 0)).where(kept)).one()
    return Stats(active, recent[0], int(recent[1]), total[0], int(total[1]))
