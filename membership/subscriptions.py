"""Stars subscriptions: one per user, renewed by Telegram, stoppable by the bot.

The life cycle: a press on a recurring plan offers a subscription link
(pressed again before paying, the same link); the first payment makes the
subscription active; each renewal is a payment that extends access quietly
for a member already in the channel; Telegram's ``subscription`` updates
say the user cancelled, re-enabled, or that a renewal failed, and the user
is told once per change; a refund or revocation stops renewals through
``editUserStarSubscription`` (an outbox call, retried like any other), and
an admin can stop or resume them.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.runners import JobContext
from database.upsert import insert_for
from membership import members
from models.base import utcnow
from models.subscription import ACTIVE, CANCELED, FAILED, PENDING, STOPPED, Subscription
from settings import Settings
from settings.plans import Plan

log = logging.getLogger(__name__)

# The outbox job that performs this module's Telegram side (membership.job_runners).
SUBSCRIPTION_LINK_JOB = "subscription_link"
# A pending subscription link is handed out again, not made anew, for this long.
LINK_REUSE = timedelta(hours=24)
RENEW_IN_TELEGRAM = "turn renewal back on in Telegram (Settings > My Stars > Subscriptions)"
UPDATE_STATES = {"canceled": CANCELED, "active": ACTIVE, "failed": FAILED}


def get(session: Session, user_id: int, *, lock: bool = False) -> Subscription | None:
    return session.get(Subscription, user_id, with_for_update=lock, populate_existing=lock)


def offer(session: Session, settings: Settings, plan: Plan, user_id: int, invoice_params: dict,
          now: datetime | None = None) -> str | None:
    """A press on a recurring plan: None if a link is on its way, else the answer instead of one.

    One subscription per user: an active subscriber gets their status, and a
    second press before paying gets the link already made.
    """
    now = now or utcnow()
    current = _locked_or_new(session, user_id, now)
    answer = _instead_of_a_new_link(session, current, user_id, now)
    if answer is not None:
        return answer
    if current.state == PENDING and current.link and now - current.link_created_at < LINK_REUSE:
        _send_link(session, user_id, plan.title, current.link)
        return None
    current.state, current.plan_id, current.link, current.link_created_at = PENDING, plan.id, None, now
    current.charge_id = current.invoice_payload = current.renews_at = None
    current.updated_at = now
    jobs.enqueue_job(session, SUBSCRIPTION_LINK_JOB, {"user_id": user_id, "params": invoice_params,
                                                      "title": plan.title}, chat_id=user_id)
    return None


def _instead_of_a_new_link(session: Session, current: Subscription, user_id: int, now: datetime) -> str | None:
    access_until = _access_until(session, user_id)
    if current.state == ACTIVE and current.renews_at and current.renews_at > now:
        return f"You are already subscribed. It renews on {current.renews_at:%Y-%m-%d}. See /status."
    if current.state in (CANCELED, FAILED) and access_until and access_until > now:
        return (f"Your subscription is {'canceled' if current.state == CANCELED else 'not renewing'} and your "
                f"access lasts until {access_until:%Y-%m-%d %H:%M} UTC. To keep it, {RENEW_IN_TELEGRAM}.")
    if current.state == PENDING and current.link is None and now - current.link_created_at < LINK_REUSE:
        return "Your subscription link is on its way."
    return None


def record_payment(session: Session, user_id: int, plan_id: str, charge_id: str, payload: str,
                   renews_at: datetime | None, now: datetime | None = None) -> bool:
    """A subscription payment was credited; True if it renewed the subscription we know."""
    now = now or utcnow()
    current = _locked_or_new(session, user_id, now)
    renewal = current.charge_id is not None and current.invoice_payload == payload[:128]
    if not renewal:
        current.charge_id, current.invoice_payload, current.plan_id = charge_id, payload[:128], plan_id
    if not (renewal and current.state == STOPPED):  # a charge that beat the bot's stop keeps it stopped
        current.state = ACTIVE
    current.renews_at, current.link, current.updated_at = renews_at, None, now
    return renewal


def on_update(session: Session, user_id: int, payload: str, state: str, now: datetime | None = None) -> str | None:
    """Telegram's ``subscription`` update: the message for the user, once per change of state."""
    now = now or utcnow()
    current = get(session, user_id, lock=True)
    new_state = UPDATE_STATES.get(state)
    if current is None or current.invoice_payload != payload[:128] or new_state is None:
        log.warning("subscription update %r for user %s matches no subscription we know", state, user_id)
        return None
    if current.state == new_state:
        return None  # told already
    current.state, current.updated_at = new_state, now
    until = _access_until(session, user_id)
    when = f"{until:%Y-%m-%d %H:%M} UTC" if until else "the end of the paid period"
    if new_state == CANCELED:
        return f"Your subscription is canceled. Your access lasts until {when}. To keep it, {RENEW_IN_TELEGRAM}."
    if new_state == FAILED:
        return (f"The renewal payment of your subscription failed. Your access lasts until {when}. "
                "Top up your Stars balance so Telegram can try again, or use /plans once it has ended.")
    return f"Your subscription renews again. Next charge: {current.renews_at:%Y-%m-%d}." if current.renews_at \
        else "Your subscription renews again."


def stop_renewals(session: Session, user_id: int, now: datetime | None = None) -> bool:
    """No more renewals (a refund, a revocation, an admin): True if a call to Telegram was queued."""
    current = get(session, user_id, lock=True)
    if current is None or current.charge_id is None or current.state not in (ACTIVE, FAILED):
        return False
    current.state, current.updated_at = STOPPED, now or utcnow()
    _edit_renewal(session, current, canceled=True)
    return True


def resume_renewals(session: Session, user_id: int, now: datetime | None = None) -> bool:
    """Re-enable renewals the bot stopped (Telegram allows no other): True if queued."""
    current = get(session, user_id, lock=True)
    if current is None or current.charge_id is None or current.state != STOPPED:
        return False
    current.state, current.updated_at = ACTIVE, now or utcnow()
    _edit_renewal(session, current, canceled=False)
    return True


def renews(session: Session, user_id: int) -> Subscription | None:
    """The user's subscription if it will renew."""
    current = get(session, user_id)
    return current if current is not None and current.state == ACTIVE and current.renews_at else None


def run_subscription_link(job, context: JobContext) -> None:
    """Create the subscription link once, keep it for a second press, then send it."""
    state = dict(job.state or {})
    user_id = job.payload["user_id"]
    if "link" not in state:
        state["link"] = context.client.call("createInvoiceLink", job.payload["params"])
        with context.transaction() as session:
            offered = get(session, user_id, lock=True)
            if offered is not None and offered.state == PENDING:
                offered.link = state["link"]
            context.save_state(state, session=session)
    context.client.call("sendMessage", _link_message(user_id, job.payload["title"], state["link"]))


def _send_link(session: Session, user_id: int, title: str, link: str) -> None:
    jobs.enqueue_call(session, "sendMessage", _link_message(user_id, title, link), chat_id=user_id)


def _link_message(user_id: int, title: str, link: str) -> dict:
    return {
        "chat_id": user_id,
        "text": f"{title}: tap below to subscribe. It renews every 30 days until you cancel.",
        "reply_markup": {"inline_keyboard": [[{"text": "Subscribe", "url": link}]]},
    }


def _edit_renewal(session: Session, current: Subscription, *, canceled: bool) -> None:
    jobs.enqueue_call(session, "editUserStarSubscription", {
        "user_id": current.user_id, "telegram_payment_charge_id": current.charge_id, "is_canceled": canceled,
    }, chat_id=current.user_id)


def _locked_or_new(session: Session, user_id: int, now: datetime) -> Subscription:
    """The user's row, locked; a new one stands STOPPED with no charge until it is offered or paid."""
    session.execute(insert_for(session, Subscription).values(user_id=user_id, state=STOPPED, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["user_id"]))
    return get(session, user_id, lock=True)


def _access_until(session: Session, user_id: int) -> datetime | None:
    record = members.get(session, user_id)
    return record.expires_at if record is not None else None
