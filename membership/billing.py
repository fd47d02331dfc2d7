"""Stars payments: invoices, pre-checkout verdicts, exactly-once credit.

Every function takes the session and leaves the commit to its caller, so in
the webhook the credit, the membership extension and the queued invite are
one transaction with the update's dedupe row.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from database.upsert import insert_for
from membership import entitlements, invites, invoice_payload, members, notices, refunds, subscriptions
from membership.entitlements import AccessChange
from models.base import utcnow
from models.entitlement import PAID as PAID_ROW
from models.entitlement import REFUND
from models.payment import PAID, REFUNDED, UNMATCHED, Payment
from settings import Settings
from settings.plans import Plan
from settings.telegram import STARS_CURRENCY, SUBSCRIPTION_PERIOD_SECONDS

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Terms:
    """What a charge bought."""

    plan_id: str
    days: int


@dataclass(frozen=True)
class Credit:
    """The outcome of a new charge.

    ``credited`` (an invite follows), ``renewed`` (a subscription renewal for
    a member in the channel: a receipt, no new link), ``unmatched`` (being
    refunded) or ``refunded_before``.
    """

    payment: Payment
    outcome: str
    change: AccessChange | None = None


def invoice_params(settings: Settings, plan: Plan, user_id: int) -> dict:
    """sendInvoice / createInvoiceLink parameters for ``plan``, made for ``user_id``."""
    params = {
        "title": plan.title,
        "description": f"Access to the private channel for {plan.days} days.",
        "payload": invoice_payload.sign(settings.payload_secret, plan, user_id),
        "provider_token": "",
        "currency": STARS_CURRENCY,
        "prices": [{"label": plan.title, "amount": plan.stars}],
    }
    if plan.recurring:
        params["subscription_period"] = SUBSCRIPTION_PERIOD_SECONDS
    return params


def pre_checkout_verdict(settings: Settings, payer_id: int, currency: str, total_amount: int,
                         payload: str) -> str | None:
    """None to accept, or the message shown to the payer. Reads no database.

    A plan that is no longer offered is refused here, before any money
    moves; a payment that arrives anyway is honoured for its signed terms.
    """
    sale = invoice_payload.verify(settings.payload_keys, payload)
    if sale is None:
        return "This invoice was not issued by this bot. Please use /plans to get a new one."
    plan = settings.plan(sale.plan_id)
    if plan is None:
        return "This plan is no longer offered. Please choose one from /plans."
    if sale.user_id != payer_id:
        return "This invoice was made for someone else. Please use /plans to get your own."
    price = sale.stars if sale.stars is not None else plan.stars
    if currency != STARS_CURRENCY or total_amount != price:
        return f"The price of {plan.title} is {price} Stars. Please use /plans to get a new invoice."
    return None


def credit(session: Session, settings: Settings, charge: PaidCharge, *, source: str,
           now: datetime | None = None) -> Credit | None:
    """Record a new charge and deliver what it bought; None if it was recorded before.

    The insert on the charge id is the exactly-once point: a redelivered
    update, a replayed charge and reconciliation all land here. A charge
    that matches no sale is refunded, never kept silently; a charge already
    refunded (reconciliation may meet the refund first) is never credited.
    """
    now = now or utcnow()
    terms, problem = match_terms(session, settings, charge)
    refunded_before = entitlements.has_row(session, REFUND, charge.charge_id)
    status = REFUNDED if refunded_before else PAID if terms else UNMATCHED
    if not _insert_payment(session, charge, terms, status, source, now):
        return None
    payment = session.get(Payment, charge.charge_id)
    if refunded_before:
        return Credit(payment, "refunded_before")
    if terms is None:
        _refuse(session, settings, payment, problem)
        return Credit(payment, "unmatched")
    change = entitlements.add(session, charge.user_id, PAID_ROW, days=terms.days, until=charge.subscription_expires_at,
                              charge_id=charge.charge_id, note=terms.plan_id, now=now)
    renewal = charge.is_recurring and subscriptions.record_payment(
        session, charge.user_id, terms.plan_id, charge.charge_id, charge.invoice_payload,
        charge.subscription_expires_at, now)
    if renewal and change.was_active and members.get(session, charge.user_id).in_channel:
        return Credit(payment, "renewed", change)  # quiet: a receipt, not a new link
    invites.queue(session, charge.user_id, reason=charge.charge_id)
    return Credit(payment, "credited", change)


def match_terms(session: Session, settings: Settings, charge: PaidCharge) -> tuple[Terms | None, str]:
    """What the charge bought, from its signed payload; or None and why not."""
    sale = invoice_payload.verify(settings.payload_keys, charge.invoice_payload)
    if sale is None and charge.is_recurring:
        return _renewal_terms(session, charge)
    if sale is None:
        return None, "its invoice payload was not signed by this bot (or by a key it still knows)"
    if sale.user_id != charge.user_id:
        return None, f"its invoice was made for user {sale.user_id}"
    if sale.days is not None:
        days, price = sale.days, sale.stars
    elif (plan := settings.plan(sale.plan_id)) is not None:
        days, price = plan.days, plan.stars
    else:
        return None, f"its plan {sale.plan_id!r} is no longer offered and the invoice does not say its terms"
    if charge.currency != STARS_CURRENCY or charge.total_amount != price:
        return None, f"it paid {charge.total_amount} {charge.currency} for a price of {price} {STARS_CURRENCY}"
    return Terms(sale.plan_id, days), ""


def _renewal_terms(session: Session, charge: PaidCharge) -> tuple[Terms | None, str]:
    """A renewal repeats its first payment's payload: honour it as that payment was honoured.

    Its key may have been rotated out since the subscription started.
    """
    first = session.scalars(select(Payment).where(
        Payment.user_id == charge.user_id, Payment.invoice_payload == charge.invoice_payload[:128],
        Payment.status.in_((PAID, REFUNDED))).order_by(Payment.created_at).limit(1)).first()
    days = entitlements.days_paid_by(session, first.charge_id) if first else None
    if first is None or days is None or first.stars != charge.total_amount:
        return None, "it renews a subscription this bot has no record of"
    return Terms(first.plan_id, days), ""


def _insert_payment(session: Session, charge: PaidCharge, terms: Terms | None, status: str, source: str,
                    now: datetime) -> bool:
    inserted = session.execute(
        insert_for(session, Payment).values(
            charge_id=charge.charge_id, user_id=charge.user_id, plan_id=terms.plan_id if terms else "unknown",
            stars=charge.total_amount, invoice_payload=charge.invoice_payload[:128],
            is_recurring=charge.is_recurring, subscription_expires_at=charge.subscription_expires_at,
            status=status, source=source, created_at=now,
        ).on_conflict_do_nothing(index_elements=["charge_id"]).returning(Payment.charge_id)
    ).first()
    return inserted is not None


def _refuse(session: Session, settings: Settings, payment: Payment, problem: str) -> None:
    log.warning("payment %s of user %s matched no sale (%s): refunding it", payment.charge_id, payment.user_id,
                problem)
    refunds.refund_unmatched(session, payment)
    notices.tell_admins(session, settings, f"A payment of {payment.stars} Stars by user {payment.user_id} "
                                          f"({payment.charge_id}) matched no sale: {problem}. It is being refunded.")


def find_payment(session: Session, charge_id: str) -> Payment | None:
    return session.get(Payment, charge_id)


def from_timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=timezone.utc) if value else None
