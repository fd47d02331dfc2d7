"""The expiry sweep: one reminder before expiry, removal after it, each exactly once.

Every worker of every replica runs it on a timer, and operators run it from
the CLI, possibly all at once. Each action is claimed by one UPDATE that
moves ``reminded_for`` / ``removed_for`` to the membership's current expiry
and returns the rows it changed: PostgreSQL re-checks the WHERE clause on a
row another transaction just changed, so two sweepers never claim the same
row, and no session-level lock is needed (unsafe behind a transaction-mode
PgBouncer). The claim and the queued Telegram calls commit together.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from bot_outbox import jobs
from membership import invites, members, subscriptions
from models.base import utcnow
from models.membership import Membership
from models.subscription import ACTIVE, CANCELED, FAILED
from models.user import User
from settings import Settings

# Someone who passed pre-checkout this recently may have a payment on its way.
CHECKOUT_PROTECTION = timedelta(minutes=30)


@dataclass
class SweepReport:
    at: datetime
    dry_run: bool
    reminded: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would remind" if self.dry_run else "reminded"
        verb2 = "would remove" if self.dry_run else "removed"
        return (f"sweep at {self.at.isoformat()}: {verb} {len(self.reminded)} {self.reminded}, "
                f"{verb2} {len(self.removed)} {self.removed}")


def run(session: Session, settings: Settings, *, now: datetime | None = None, dry_run: bool = False) -> SweepReport:
    """One pass; the caller commits (a dry run changes nothing to commit)."""
    now = now or utcnow()
    report = SweepReport(at=now, dry_run=dry_run)
    report.reminded = _remind(session, settings, now, dry_run)
    report.removed = _remove(session, settings, now, dry_run)
    return report


def _remind(session: Session, settings: Settings, now: datetime, dry_run: bool) -> list[int]:
    if settings.reminder_days <= 0:
        return []
    due = and_(
        Membership.expires_at > now,
        Membership.expires_at <= now + timedelta(days=settings.reminder_days),
        or_(Membership.reminded_for.is_(None), Membership.reminded_for != Membership.expires_at),
    )
    if dry_run:
        return list(session.scalars(select(Membership.user_id).where(due).order_by(Membership.user_id)))
    claimed = session.execute(
        update(Membership).where(due).values(reminded_for=Membership.expires_at)
        .returning(Membership.user_id, Membership.expires_at)
        .execution_options(synchronize_session=False)
    ).all()
    for user_id, expires_at in claimed:
        text = reminder(session, user_id, expires_at)
        if text:
            jobs.enqueue_call(session, "sendMessage", {"chat_id": user_id, "text": text}, chat_id=user_id)
    return sorted(user_id for user_id, _ in claimed)


def reminder(session: Session, user_id: int, expires_at: datetime) -> str | None:
    """The reminder for this kind of member; None for a subscription that will renew on its own."""
    ends = f"{expires_at:%Y-%m-%d %H:%M} UTC"
    current = subscriptions.get(session, user_id)
    state = current.state if current is not None and current.charge_id else None
    if state == ACTIVE and current.renews_at and current.renews_at >= expires_at - timedelta(days=1):
        return None
    if state == CANCELED:
        return (f"Your membership ends on {ends}: your subscription is canceled. "
                f"To keep it, {subscriptions.RENEW_IN_TELEGRAM}.")
    if state == FAILED:
        return (f"The renewal payment of your subscription failed, so your membership ends on {ends}. "
                "Top up your Stars balance so Telegram can try again, or use /plans.")
    return f"Your membership ends on {ends}. Use /plans to renew it."


def _remove(session: Session, settings: Settings, now: datetime, dry_run: bool) -> list[int]:
    recent_checkout = exists().where(
        User.id == Membership.user_id, User.checkout_started_at > now - CHECKOUT_PROTECTION)
    due = and_(
        Membership.expires_at <= now - timedelta(hours=settings.removal_grace_hours),
        or_(Membership.removed_for.is_(None), Membership.removed_for != Membership.expires_at),
        Membership.user_id.not_in(settings.never_remove_ids or [-1]),
        ~recent_checkout,
    )
    if dry_run:
        return list(session.scalars(select(Membership.user_id).where(due).order_by(Membership.user_id)))
    claimed = session.scalars(
        update(Membership).where(due).values(removed_for=Membership.expires_at)
        .returning(Membership.user_id)
        .execution_options(synchronize_session=False)
    ).all()
    for user_id in claimed:
        invites.revoke_outstanding(session, settings, user_id)
        members.queue_removal(session, user_id, notice=(
            "Your membership has ended and you have been removed from the channel. "
            "Use /plans to come back at any time."))
    return sorted(claimed)
