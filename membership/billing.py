"""Stars payments: invoices, pre-checkout verdicts, exactly-once credit, refunds.

Every function takes the session and leaves the commit to its caller, so in
the webhook the credit, the membership extension and the queued invite are
one transaction with the update's dedupe row.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.runners import JobContext
from database.upsert import insert_for
from membership import invites, invoice_payload, members
from models.base import utcnow
from models.payment import PAID, REFUNDED, REFUNDING, Payment
from settings import Settings
from settings.plans import Plan
from settings.telegram import STARS_CURRENCY, SUBSCRIPTION_PERIOD_SECONDS

# The outbox job that performs this module's Telegram side (membership.job_runners).
SUBSCRIPTION_LINK_JOB = "subscription_link"


@dataclass(frozen=True)
class PaidCharge:
    """What Telegram tells us about a successful Stars payment."""

    charge_id: str
    user_id: int
    total_amount: int
    currency: str
    invoice_payload: str
    is_recurring: bool = False
    subscription_expires_at: datetime | None = None


def invoice_params(settings: Settings, plan: Plan, user_id: int) -> dict:
    """sendInvoice / createInvoiceLink parameters for ``plan``, made for ``user_id``."""
    params = {
        "title": plan.title,
        "description": f"Access to the private channel for {plan.days} days.",
        "payload": invoice_payload.sign(settings.payload_secret, plan.id, user_id),
        "provider_token": "",
        "currency": STARS_CURRENCY,
        "prices": [{"label": plan.title, "amount": plan.stars}],
    }
    if plan.recurring:
        params["subscription_period"] = SUBSCRIPTION_PERIOD_SECONDS
    return params


def offer_subscription(session: Session, settings: Settings, plan: Plan, user_id: int) -> None:
    """Subscriptions exist only as invoice links: queue the job that creates one, then sends it."""
    jobs.enqueue_job(session, SUBSCRIPTION_LINK_JOB, {
        "user_id": user_id, "params": invoice_params(settings, plan, user_id), "title": plan.title,
    }, chat_id=user_id)


def pre_checkout_verdict(settings: Settings, payer_id: int, currency: str, total_amount: int,
                         payload: str) -> str | None:
    """None to accept, or the message shown to the payer. Reads no database."""
    signed = invoice_payload.verify(settings.payload_secret, payload)
    if signed is None:
        return "This invoice was not issued by this bot. Please use /plans to get a new one."
    plan = settings.plan(signed.plan_id)
    if plan is None:
        return "This plan is no longer offered. Please choose one from /plans."
    if signed.user_id != payer_id:
        return "This invoice was made for someone else. Please use /plans to get your own."
    if currency != STARS_CURRENCY or total_amount != plan.stars:
        return f"The price of {plan.title} is {plan.stars} Stars. Please use /plans to get a new invoice."
    return None


def credit(session: Session, settings: Settings, charge: PaidCharge, *, source: str,
           now: datetime | None = None) -> Payment | None:
    """Record the charge and grant what it paid for; None if it was credited before.

    The insert on the charge id is the exactly-once point: a redelivered
    update, a replayed charge and reconciliation all land here.
    """
    now = now or utcnow()
    signed = invoice_payload.verify(settings.payload_secret, charge.invoice_payload)
    plan_id = signed.plan_id if signed else "unknown"
    inserted = session.execute(
        insert_for(session, Payment).values(
            charge_id=charge.charge_id, user_id=charge.user_id, plan_id=plan_id, stars=charge.total_amount,
            invoice_payload=charge.invoice_payload[:128], is_recurring=charge.is_recurring,
            subscription_expires_at=charge.subscription_expires_at, status=PAID, source=source, created_at=now,
        ).on_conflict_do_nothing(index_elements=["charge_id"]).returning(Payment.charge_id)
    ).first()
    if inserted is None:
        return None
    plan = settings.plan(plan_id)
    days = plan.days if plan else 0
    if days or charge.subscription_expires_at:
        members.extend(session, charge.user_id, days=days, now=now, at_least_until=charge.subscription_expires_at)
        invites.queue(session, charge.user_id, reason=charge.charge_id)
    return session.get(Payment, charge.charge_id)


def start_refund(session: Session, charge_id: str) -> Payment | None:
    """Claim a paid charge for refunding; None if unknown or already refunding/refunded."""
    claimed = session.execute(
        update(Payment).where(Payment.charge_id == charge_id, Payment.status == PAID)
        .values(status=REFUNDING).returning(Payment.charge_id)
        .execution_options(synchronize_session=False)
    ).first()
    return session.get(Payment, charge_id) if claimed else None


def abandon_refund(session: Session, charge_id: str) -> None:
    """Telegram refused the refund: the charge stands."""
    session.execute(update(Payment).where(Payment.charge_id == charge_id, Payment.status == REFUNDING)
                    .values(status=PAID).execution_options(synchronize_session=False))


def record_refund(session: Session, charge_id: str, now: datetime | None = None) -> Payment | None:
    """Telegram says the charge was refunded: mark it and take the access back. Idempotent."""
    now = now or utcnow()
    changed = session.execute(
        update(Payment).where(Payment.charge_id == charge_id, Payment.status != REFUNDED)
        .values(status=REFUNDED, refunded_at=now).returning(Payment.user_id)
        .execution_options(synchronize_session=False)
    ).first()
    if changed is None:
        return None
    members.revoke(session, changed.user_id, now=now,
                      notice="Your payment was refunded, so your access to the channel has ended.")
    return session.get(Payment, charge_id)


def find_payment(session: Session, charge_id: str) -> Payment | None:
    return session.get(Payment, charge_id)


def from_timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=timezone.utc) if value else None


def run_subscription_link(job, context: JobContext) -> None:
    """Subscriptions exist only as invoice links: create one (once), then send it."""
    state = dict(job.state or {})
    if "link" not in state:
        state["link"] = context.client.call("createInvoiceLink", job.payload["params"])
        context.save_state(state)
    context.client.call("sendMessage", {
        "chat_id": job.payload["user_id"],
        "text": f"{job.payload['title']}: tap below to subscribe. It renews every 30 days until you cancel.",
        "reply_markup": {"inline_keyboard": [[{"text": "Subscribe", "url": state["link"]}]]},
    })
