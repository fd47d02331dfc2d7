"""Access follows the money, end to end over the emulator and PostgreSQL.

A refund takes back what it refunds and no more; a payment is honoured for
what it bought or refunded, never kept silently; nobody without access
stays in the channel.
"""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update

from membership import entitlements, invoice_payload, reconcile, sweep
from models.base import db, utcnow
from models.entitlement import PAID as PAID_ROW
from models.entitlement import Entitlement
from models.invite import FAILED, Invite
from models.outbox import DONE, OutboxJob
from models.payment import PAID, REFUNDED, Payment
from settings import settings_of
from stack_harness.bot_env import ADMIN_ID, BOT_TOKEN, CHANNEL_ID, make_env
from tests.helpers import build_app, count, wait_until
from tests.membership.flows import buy, invite_message, link_in, membership_of
from worker_process import lifecycle

OLD_KEY, NEW_KEY = "an-old-payload-secret-0123", "the-new-payload-secret-4567"


@pytest.fixture
def app(pg_database_url, emulator):
    """The suite's app, mid-way through a payload key rotation."""
    app = build_app(make_env(pg_database_url, emulator.url, PAYLOAD_SECRET=NEW_KEY, PAYLOAD_SECRET_PREVIOUS=OLD_KEY),
                    outbox_poll_seconds=0.2)
    yield app
    lifecycle.shutdown(app)


def payment_status(app, charge_id: str) -> str | None:
    with app.app_context():
        payment = db.session.get(Payment, charge_id)
        return payment.status if payment else None


def days_left(app, user_id: int) -> float:
    return (membership_of(app, user_id).expires_at - utcnow()) / timedelta(days=1)


def message_to(emulator, chat_id: int, text: str, since: int = 0):
    return emulator.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == chat_id and text in c.params["text"],
                                  since=since, timeout=15)


def test_a_refund_before_joining_closes_the_unused_link_and_a_join_without_access_is_undone(live):
    emulator = live.emulator
    paid = buy(emulator, 3001)
    link = link_in(invite_message(emulator, 3001))
    assert emulator.refund(emulator.user(3001), paid.charge_id).delivered
    emulator.wait_for_call("revokeChatInviteLink", lambda c: c.params["invite_link"] == link)
    assert not emulator.join_via_link(emulator.user(3001), link).joined
    # Through a link the bot never tracked (the owner's own), access is still checked.
    own_link = requests.post(f"{emulator.url}/bot{BOT_TOKEN}/createChatInviteLink",
                             json={"chat_id": CHANNEL_ID}, timeout=5).json()["result"]["invite_link"]
    since = emulator.next_call_index
    assert emulator.join_via_link(emulator.user(3001), own_link).joined
    emulator.wait_for_call("banChatMember", lambda c: c.params["user_id"] == 3001, since=since)
    message_to(emulator, 3001, "no active membership", since=since)
    wait_until(lambda: 3001 not in emulator.members(), message="the member without access removed")


def test_two_months_paid_one_refunded_leaves_one_month(live):
    emulator = live.emulator
    first = buy(emulator, 3002)
    invite_message(emulator, 3002)
    second = buy(emulator, 3002)
    assert 59.9 < days_left(live.app, 3002) <= 60
    assert emulator.join_via_link(emulator.user(3002), link_in(invite_message(emulator, 3002))).joined
    since = emulator.next_call_index
    assert emulator.refund(emulator.user(3002), first.charge_id).delivered
    message_to(emulator, 3002, "now runs until", since=since)
    assert 29.9 < days_left(live.app, 3002) <= 30
    assert payment_status(live.app, first.charge_id) == REFUNDED
    assert payment_status(live.app, second.charge_id) == PAID
    assert 3002 in emulator.members()


def test_a_refund_leaves_an_admin_grant_in_place(live):
    emulator = live.emulator
    assert "Granted" in emulator.send_message(emulator.user(ADMIN_ID), "/grant 3003 10").delivery.response_call.params[
        "text"]
    paid = buy(emulator, 3003)
    assert 39.9 < days_left(live.app, 3003) <= 40
    assert emulator.refund(emulator.user(3003), paid.charge_id).delivered
    wait_until(lambda: days_left(live.app, 3003) <= 10, message="the refunded month taken back")
    assert days_left(live.app, 3003) > 9.9


def test_a_plan_removed_between_invoice_and_payment_is_honoured_for_what_it_bought(live):
    """The invoice was made by the previous deploy, which still sold "gold"; this one does not."""
    emulator, settings = live.emulator, settings_of(live.app)
    assert settings.plan("gold") is None
    gone = dataclasses.replace(settings.plan("month"), id="gold", stars=300, days=45)
    payload = invoice_payload.sign(settings.payload_secret, gone, 3004)
    charge = emulator.record_transaction_without_update(emulator.user(3004, has_started_bot=True), 300, payload)
    thanks = emulator.announce_payment(charge.charge_id).delivery.response_call
    assert "Your membership runs until" in thanks.params["text"]
    assert payment_status(live.app, charge.charge_id) == PAID
    assert 44.9 < days_left(live.app, 3004) <= 45
    invite_message(emulator, 3004)


def test_a_payload_signed_with_the_previous_key_is_credited(live):
    emulator, settings = live.emulator, settings_of(live.app)
    payload = invoice_payload.sign(OLD_KEY.encode(), settings.plan("week"), 3005)
    charge = emulator.record_transaction_without_update(emulator.user(3005, has_started_bot=True), 75, payload)
    thanks = emulator.announce_payment(charge.charge_id).delivery.response_call
    assert "Your membership runs until" in thanks.params["text"]
    assert 6.9 < days_left(live.app, 3005) <= 7
    invite_message(emulator, 3005)


def test_a_payment_that_matches_no_sale_is_refunded_and_everyone_is_told(live):
    emulator, settings = live.emulator, settings_of(live.app)
    genuine = invoice_payload.sign(settings.payload_secret, settings.plan("month"), 3006)
    forged = genuine[:-3] + ("abc" if not genuine.endswith("abc") else "xyz")
    charge = emulator.record_transaction_without_update(emulator.user(3006, has_started_bot=True), 250, forged)
    answer = emulator.announce_payment(charge.charge_id)
    assert answer.delivery.status == 200
    assert "refunded in full" in answer.delivery.response_call.params["text"] or \
        message_to(emulator, 3006, "refunded in full")
    emulator.wait_for_call("refundStarPayment", lambda c: c.ok and c.params["telegram_payment_charge_id"] ==
                           charge.charge_id)
    message_to(emulator, ADMIN_ID, "matched no sale")
    wait_until(lambda: payment_status(live.app, charge.charge_id) == REFUNDED, message="refund recorded")
    assert membership_of(live.app, 3006) is None
    with live.app.app_context():
        assert db.session.scalar(select(Entitlement.id).where(Entitlement.user_id == 3006,
                                                              Entitlement.kind == "paid")) is None


def test_reconciliation_never_credits_a_refunded_charge_in_either_order(live):
    emulator, settings = live.emulator, settings_of(live.app)
    charges = []
    for user_id in (3007, 3008):
        payload = invoice_payload.sign(settings.payload_secret, settings.plan("month"), user_id)
        charges.append(emulator.record_transaction_without_update(emulator.user(user_id, has_started_bot=True), 250,
                                                                  payload).charge_id)
    for charge_id in charges:
        emulator.record_refund_without_update(charge_id)
    transactions = emulator.star_transactions()
    with live.app.app_context():  # one order as Telegram lists them, the other reversed
        reconcile.apply(db.session, settings, [t for t in transactions if t["id"] == charges[0]])
        reconcile.apply(db.session, settings, [t for t in reversed(transactions) if t["id"] == charges[1]])
        db.session.commit()
    for charge_id, user_id in zip(charges, (3007, 3008)):
        assert payment_status(live.app, charge_id) == REFUNDED
        membership = membership_of(live.app, user_id)
        assert membership is None or membership.expires_at <= utcnow()
    with live.app.app_context():
        assert db.session.scalar(select(OutboxJob.id).where(OutboxJob.kind == "invite")) is None


def test_reconciliation_reads_past_ten_thousand_transactions_and_then_only_new_ones(live):
    emulator, settings = live.emulator, settings_of(live.app)
    stranger = emulator.user(3009, has_started_bot=True)
    for _ in range(10_050):
        emulator.record_transaction_without_update(stranger, 1, "")  # not an invoice payment: skipped
    payload = invoice_payload.sign(settings.payload_secret, settings.plan("week"), 3010)
    late = emulator.record_transaction_without_update(emulator.user(3010, has_started_bot=True), 75, payload)
    runner = live.app.test_cli_runner()
    first = runner.invoke(args=["reconcile"])
    assert first.exit_code == 0 and "credited 1" in first.output, first.output
    assert payment_status(live.app, late.charge_id) == PAID
    since = emulator.next_call_index
    second = runner.invoke(args=["reconcile"])
    assert "reconciled 0 new transactions from #10051" in second.output, second.output
    assert [c.params["offset"] for c in emulator.calls("getStarTransactions", since=since)] == [10051]
    full = runner.invoke(args=["reconcile", "--full"])
    assert "reconciled 10051 new transactions from #0" in full.output and "credited 0" in full.output, full.output


def test_link_gives_a_member_a_fresh_invite_after_telegram_refused_one(live):
    emulator = live.emulator
    emulator.inject("createChatInviteLink", "400", times=1)
    assert buy(emulator, 3011).ok
    emulator.wait_for_call("createChatInviteLink", lambda c: not c.ok)
    message_to(emulator, ADMIN_ID, "refused the invite")
    wait_until(lambda: count(live.app, Invite, Invite.status == FAILED) == 1, message="the invite marked failed")
    since = emulator.next_call_index
    reply = emulator.send_message(emulator.user(3011), "/link").delivery.response_call
    assert "on its way" in reply.params["text"]
    link = link_in(invite_message(emulator, 3011, since=since))
    assert emulator.join_via_link(emulator.user(3011), link).joined
    again = emulator.send_message(emulator.user(3011), "/link").delivery.response_call
    assert "recently" in again.params["text"]
    stranger = emulator.send_message(emulator.user(3012), "/link").delivery.response_call
    assert "not a member" in stranger.params["text"]


def test_a_removal_is_skipped_when_the_member_paid_after_it_was_decided(pg_database_url, emulator):
    app = build_app(make_env(pg_database_url, emulator.url), background=False, outbox_poll_seconds=0.2)
    try:
        with app.app_context():
            _credit("c-3013-a", 3013, days_ago=40)
            report = sweep.run(db.session, settings_of(app))
            assert report.removed == [3013]
            _credit("c-3013-b", 3013)  # pays before the removal job runs
            db.session.commit()
        lifecycle.start_background(app)
        app.extensions["outbox_sender"].notify(5)
        wait_until(lambda: _job_done(app, "remove_member"), message="the removal job ran")
        assert emulator.calls("banChatMember") == []
    finally:
        lifecycle.shutdown(app)


def test_a_refund_telegram_refuses_puts_the_charge_back_and_tells_the_admin(live):
    emulator = live.emulator
    paid = buy(emulator, 3014)
    emulator.inject("refundStarPayment", "400", times=1)
    admin = emulator.user(ADMIN_ID, "Admin")
    assert emulator.send_message(admin, f"/refund {paid.charge_id}").delivered
    message_to(emulator, ADMIN_ID, "refused the refund")
    wait_until(lambda: payment_status(live.app, paid.charge_id) == PAID, message="the charge is paid again")
    assert emulator.send_message(admin, f"/refund {paid.charge_id}").delivered
    wait_until(lambda: payment_status(live.app, paid.charge_id) == REFUNDED, message="the second try refunds")


def _credit(charge_id: str, user_id: int, days_ago: int = 0) -> None:
    """A month paid ``days_ago``, recorded as the webhook would."""
    now = utcnow() - timedelta(days=days_ago)
    db.session.add(Payment(charge_id=charge_id, user_id=user_id, plan_id="month", stars=250, invoice_payload="-",
                           status=PAID, source="test", created_at=now))
    entitlements.add(db.session, user_id, PAID_ROW, days=30, charge_id=charge_id, now=now)


def _job_done(app, kind: str) -> bool:
    with app.app_context():
        return db.session.scalar(select(OutboxJob.id).where(OutboxJob.kind == kind, OutboxJob.status == DONE)) \
            is not None


def test_a_member_who_left_comes_back_with_link_while_their_access_lasts(live):
    emulator = live.emulator
    assert buy(emulator, 3015).ok
    assert emulator.join_via_link(emulator.user(3015), link_in(invite_message(emulator, 3015))).joined
    assert emulator.leave(emulator.user(3015)).delivered
    wait_until(lambda: not membership_of(live.app, 3015).in_channel, message="the leave recorded")
    with live.app.app_context():  # past the cooldown of the link just used
        db.session.execute(update(Invite).where(Invite.user_id == 3015)
                           .values(created_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
    since = emulator.next_call_index
    assert "on its way" in emulator.send_message(emulator.user(3015), "/link").delivery.response_call.params["text"]
    assert emulator.join_via_link(emulator.user(3015), link_in(invite_message(emulator, 3015, since=since))).joined
    wait_until(lambda: membership_of(live.app, 3015).in_channel, message="back in")
    assert emulator.calls("banChatMember") == []
