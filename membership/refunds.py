"""Refunds: asked by an admin, owed for a payment we cannot honour, or made elsewhere.

A refund takes back exactly what its charge bought (``entitlements``) and
no more: other paid periods and grants stay. ``refundStarPayment`` runs as
an outbox job; a refund Telegram refuses, or that the outbox gives up on,
puts the charge back as it was and tells whoever is waiting for it.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.client import TelegramError
from bot_outbox.runners import JobContext
from membership import access, entitlements, notices, subscriptions
from models.base import utcnow
from models.entitlement import REFUND
from models.payment import PAID, REFUNDED, REFUNDING, Payment
from settings import Settings, current_settings

log = logging.getLogger(__name__)

# The outbox job that performs this module's Telegram side (membership.job_runners).
REFUND_JOB = "refund"


def request_refund(session: Session, admin_id: int, charge_id: str) -> Payment | None:
    """An admin's /refund: claim the charge and queue refundStarPayment; None if not refundable now."""
    claimed = session.execute(
        update(Payment).where(Payment.charge_id == charge_id, Payment.status == PAID)
        .values(status=REFUNDING).returning(Payment.user_id)
        .execution_options(synchronize_session=False)).first()
    if claimed is None:
        return None
    subscriptions.stop_renewals(session, claimed.user_id)  # or the next renewal would grant access again
    _queue(session, charge_id, claimed.user_id, admin_id=admin_id)
    return session.get(Payment, charge_id)


def refund_unmatched(session: Session, payment: Payment) -> None:
    """A payment we cannot honour is never kept: refund it (the charge is already UNMATCHED)."""
    _queue(session, payment.charge_id, payment.user_id, admin_id=None)


def record_refund(session: Session, settings: Settings, charge_id: str, user_id: int,
                  now: datetime | None = None) -> bool:
    """Telegram refunded the charge: take back what it bought, once. False if known already.

    Also for a charge we have not seen yet (reconciliation may meet the
    refund first): the refund row is kept, so the charge is never credited.
    """
    now = now or utcnow()
    session.execute(update(Payment).where(Payment.charge_id == charge_id, Payment.status != REFUNDED)
                    .values(status=REFUNDED, refunded_at=now).execution_options(synchronize_session=False))
    if entitlements.has_row(session, REFUND, charge_id):
        return False
    days = entitlements.days_paid_by(session, charge_id) or 0
    change = entitlements.add(session, user_id, REFUND, days=days, charge_id=charge_id, now=now,
                              note="refunded")
    if change is None:  # never a member: nothing to take back, the row is recorded all the same
        return True
    if change.ended:
        access.end_access(session, settings, change,
                          notice="Your payment was refunded, so your access to the channel has ended.")
    elif change.was_active:
        notices.tell(session, user_id, f"Your payment {charge_id} was refunded. "
                                      f"Your membership now {notices.describe_until(change.after, now)}.")
    return True


def run_refund(job, context: JobContext) -> None:
    charge_id, user_id, admin_id = job.payload["charge_id"], job.payload["user_id"], job.payload.get("admin_id")
    try:
        context.client.call("refundStarPayment", {"user_id": user_id, "telegram_payment_charge_id": charge_id})
    except TelegramError as error:
        if error.is_transient:
            raise
        if "ALREADY_REFUNDED" not in error.description.upper():
            with context.transaction() as session:
                _refund_failed(session, context.settings, job.payload, error.description)
            return
    with context.transaction() as session:
        record_refund(session, context.settings, charge_id, user_id)
        if admin_id is not None:
            notices.tell(session, admin_id, f"Refunded {charge_id}.")
        else:
            notices.tell(session, user_id, "We could not match your payment to a purchase, so it has been "
                                          "refunded in full. Please use /plans to buy again.")


def give_up_refund(session: Session, job, reason: str) -> None:
    """The outbox gave up on a refund (failing for a day): the charge is not left 'refunding' forever."""
    _refund_failed(session, current_settings(), job.payload, reason)


def _refund_failed(session: Session, settings: Settings, payload: dict, reason: str) -> None:
    charge_id, admin_id = payload["charge_id"], payload.get("admin_id")
    session.execute(update(Payment).where(Payment.charge_id == charge_id, Payment.status == REFUNDING)
                    .values(status=PAID).execution_options(synchronize_session=False))
    log.error("refund of %s failed: %s", charge_id, reason)
    text = f"Telegram refused the refund of {charge_id}: {reason}"
    if admin_id is not None:
        notices.tell(session, admin_id, text)
    else:
        notices.tell_admins(session, settings, text + " (a payment that matched no sale; refund it by hand)")


def _queue(session: Session, charge_id: str, user_id: int, *, admin_id: int | None) -> None:
    jobs.enqueue_job(session, REFUND_JOB, {"charge_id": charge_id, "user_id": user_id, "admin_id": admin_id},
                     chat_id=admin_id if admin_id is not None else user_id)
