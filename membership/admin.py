"""What admins can do: figures, grants, revocations, refunds. Checked on every call."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.client import TelegramError
from bot_outbox.runners import JobContext
from membership import billing, invites, members
from models.base import utcnow
from models.membership import Membership
from models.payment import PAID, Payment
from settings import Settings

# The outbox job that performs this module's Telegram side (membership.job_runners).
REFUND_JOB = "refund"

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


def grant(session: Session, admin_id: int, user_id: int, days: int) -> Membership:
    """Create or extend a membership and send an invite."""
    record = members.extend(session, user_id, days=days)
    invites.queue(session, user_id, reason=f"grant:{admin_id}")
    return record


def revoke(session: Session, user_id: int) -> bool:
    return members.revoke(session, user_id, notice="Your access to the channel has been revoked by an admin.")


def request_refund(session: Session, admin_id: int, charge_id: str) -> Payment | None:
    """Claim the charge and queue refundStarPayment; None if unknown or already refunded."""
    payment = billing.start_refund(session, charge_id)
    if payment is not None:
        jobs.enqueue_job(session, REFUND_JOB, {"charge_id": charge_id, "user_id": payment.user_id,
                                               "admin_id": admin_id}, chat_id=admin_id)
    return payment


def run_refund(job, context: JobContext) -> None:
    charge_id, admin_id = job.payload["charge_id"], job.payload["admin_id"]
    try:
        context.client.call("refundStarPayment", {"user_id": job.payload["user_id"],
                                                  "telegram_payment_charge_id": charge_id})
    except TelegramError as error:
        if error.is_transient:
            raise
        if "ALREADY_REFUNDED" not in error.description.upper():
            with context.transaction() as session:
                billing.abandon_refund(session, charge_id)
                jobs.enqueue_call(session, "sendMessage", {
                    "chat_id": admin_id, "text": f"Telegram refused the refund of {charge_id}: {error.description}"},
                    chat_id=admin_id)
            return
    with context.transaction() as session:
        billing.record_refund(session, charge_id)
        jobs.enqueue_call(session, "sendMessage", {"chat_id": admin_id, "text": f"Refunded {charge_id}."},
                            chat_id=admin_id)
