"""Stars subscriptions over the emulator and PostgreSQL: one per user, quiet renewals,
Telegram's subscription updates, renewals stopped when access is taken back."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from membership import sweep
from models.base import db, utcnow
from models.membership import Membership
from models.outbox import OutboxJob
from models.subscription import ACTIVE, CANCELED, FAILED, STOPPED, Subscription
from settings import settings_of
from stack_harness.bot_env import ADMIN_ID
from tests.helpers import count, wait_until
from tests.membership.flows import invite_message, link_in, membership_of


def subscribe(emulator, user_id: int):
    """/plans, press the monthly plan, pay the subscription link: (the PaymentResult, the link)."""
    user = emulator.user(user_id, "Subscriber")
    menu = emulator.send_message(user, "/plans").delivery.response_call
    since = emulator.next_call_index
    emulator.press_button(user, menu, "buy:monthly")
    offer = emulator.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == user_id and "Subscribe" in str(
        c.params.get("reply_markup")), since=since)
    return emulator.pay_invoice(user, link_in(offer)), link_in(offer)


def subscribed_member(emulator, user_id: int):
    """A subscriber who joined the channel."""
    paid, _ = subscribe(emulator, user_id)
    assert paid.ok
    assert emulator.join_via_link(emulator.user(user_id), link_in(invite_message(emulator, user_id))).joined
    return paid


def state_of(app, user_id: int) -> str | None:
    with app.app_context():
        row = db.session.get(Subscription, user_id)
        return row.state if row else None


def messages_to(emulator, user_id: int, text: str) -> list:
    return [c for c in emulator.calls("sendMessage") if c.params["chat_id"] == user_id and text in c.params["text"]]


def test_a_renewal_for_a_member_in_the_channel_is_a_receipt_not_a_new_link(live):
    emulator = live.emulator
    paid = subscribed_member(emulator, 4001)
    wait_until(lambda: membership_of(live.app, 4001).in_channel, message="the join recorded")
    first_expiry = membership_of(live.app, 4001).expires_at
    renewal = emulator.renew_subscription(emulator.user(4001), paid.charge_id)
    assert "Your subscription renewed" in renewal.delivery.response_call.params["text"]
    assert membership_of(live.app, 4001).expires_at > first_expiry + timedelta(days=29)
    assert len(emulator.calls("createChatInviteLink")) == 1
    with live.app.app_context():
        row = db.session.get(Subscription, 4001)
        assert row.state == ACTIVE and row.charge_id == paid.charge_id and row.renews_at > utcnow() + timedelta(days=59)


def test_pressing_again_gives_the_same_pending_link_and_a_subscriber_their_status(live):
    emulator = live.emulator
    user = emulator.user(4002)
    menu = emulator.send_message(user, "/plans").delivery.response_call
    emulator.press_button(user, menu, "buy:monthly")
    first = emulator.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == 4002 and "Subscribe" in str(
        c.params.get("reply_markup")))
    since = emulator.next_call_index
    emulator.press_button(user, menu, "buy:monthly")
    second = emulator.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == 4002 and "Subscribe" in str(
        c.params.get("reply_markup")), since=since)
    assert link_in(second) == link_in(first)
    assert len(emulator.calls("createInvoiceLink")) == 1
    assert emulator.pay_invoice(user, link_in(first)).ok
    since = emulator.next_call_index
    pressed = emulator.press_button(user, menu, "buy:monthly")
    status = emulator.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == 4002 and "already subscribed" in
                                    c.params["text"], since=since)
    assert pressed.delivered and "renews on" in status.params["text"]
    assert len(emulator.calls("createInvoiceLink")) == 1


def test_canceled_failed_and_active_updates_each_tell_the_user_once(live):
    emulator = live.emulator
    paid = subscribed_member(emulator, 4003)
    user = emulator.user(4003)
    for state, text, recorded in (("canceled", "is canceled", CANCELED), ("active", "renews again", ACTIVE),
                                  ("failed", "payment of your subscription failed", FAILED)):
        assert emulator.update_subscription(user, paid.charge_id, state).delivered
        assert emulator.update_subscription(user, paid.charge_id, state).delivered  # the same news again
        wait_until(lambda: len(messages_to(emulator, 4003, text)) == 1, message=f"told of {state}")
        assert state_of(live.app, 4003) == recorded
    assert len(messages_to(emulator, 4003, "is canceled")) == 1


def test_revoke_and_refund_stop_renewals_once_even_after_a_429(live):
    emulator = live.emulator
    admin = emulator.user(ADMIN_ID, "Admin")
    revoked = subscribed_member(emulator, 4004)
    emulator.inject("editUserStarSubscription", "429", times=1, retry_after=1)
    assert "Revoked" in emulator.send_message(admin, "/revoke 4004").delivery.response_call.params["text"]
    emulator.wait_for_call("editUserStarSubscription", lambda c: c.ok and c.params["user_id"] == 4004, timeout=15)
    refunded = subscribed_member(emulator, 4005)
    assert emulator.send_message(admin, f"/refund {refunded.charge_id}").delivered
    emulator.wait_for_call("editUserStarSubscription", lambda c: c.ok and c.params["user_id"] == 4005, timeout=15)
    wait_until(lambda: 4005 not in emulator.members(), message="the refunded subscriber removed")
    for user_id, paid in ((4004, revoked), (4005, refunded)):
        calls = [c for c in emulator.calls("editUserStarSubscription") if c.ok and c.params["user_id"] == user_id]
        assert len(calls) == 1 and calls[0].params["is_canceled"] is True
        assert state_of(live.app, user_id) == STOPPED
        assert not emulator.renew_subscription(emulator.user(user_id), paid.charge_id).ok


def test_an_admin_stops_and_resumes_renewals(live):
    emulator = live.emulator
    paid = subscribed_member(emulator, 4006)
    admin = emulator.user(ADMIN_ID, "Admin")
    assert "stopped" in emulator.send_message(admin, "/renewal 4006 off").delivery.response_call.params["text"]
    emulator.wait_for_call("editUserStarSubscription", lambda c: c.ok and c.params["is_canceled"] is True)
    assert not emulator.renew_subscription(emulator.user(4006), paid.charge_id).ok
    assert "resumed" in emulator.send_message(admin, "/renewal 4006 on").delivery.response_call.params["text"]
    emulator.wait_for_call("editUserStarSubscription", lambda c: c.ok and c.params["is_canceled"] is False)
    wait_until(lambda: emulator.renew_subscription(emulator.user(4006), paid.charge_id).ok, message="renews again")
    usage = emulator.send_message(admin, "/renewal 4006").delivery.response_call.params["text"]
    assert usage.startswith("Usage: /renewal")


def test_reminders_by_kind(app):
    now = utcnow()
    kinds = {4101: None, 4102: ACTIVE, 4103: CANCELED, 4104: FAILED}
    with app.app_context():
        for user_id, state in kinds.items():
            db.session.add(Membership(user_id=user_id, expires_at=now + timedelta(days=1), updated_at=now))
            if state:
                db.session.add(Subscription(user_id=user_id, state=state, charge_id=f"c{user_id}", plan_id="monthly",
                                            invoice_payload="p", renews_at=now + timedelta(days=1), updated_at=now))
        db.session.commit()
        report = sweep.run(db.session, settings_of(app))
        texts = {job.payload["params"]["chat_id"]: job.payload["params"]["text"] for job in db.session.scalars(
            select(OutboxJob).where(OutboxJob.kind == "call")) if job.payload["method"] == "sendMessage"}
        db.session.commit()
    assert report.reminded == [4101, 4102, 4103, 4104]
    assert "Use /plans to renew it" in texts[4101]
    assert 4102 not in texts, "an auto-renewing subscriber needs no reminder"
    assert "canceled" in texts[4103] and "turn renewal back on" in texts[4103]
    assert "renewal payment of your subscription failed" in texts[4104]


def test_paysupport_lists_the_payers_payments_and_tells_the_admins_and_terms_answer(live):
    emulator = live.emulator
    paid, _ = subscribe(emulator, 4007)
    support = emulator.send_message(emulator.user(4007), "/paysupport").delivery.response_call.params["text"]
    assert "not to Telegram's support" in support and paid.charge_id in support and "225 Stars" in support
    emulator.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == ADMIN_ID and paid.charge_id in
                           c.params["text"] and "/paysupport" in c.params["text"])
    terms = emulator.send_message(emulator.user(4007), "/terms").delivery.response_call.params["text"]
    assert "renews every 30 days" in terms
    assert count(live.app, Subscription) == 1
