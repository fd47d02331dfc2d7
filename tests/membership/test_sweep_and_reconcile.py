"""Expiry sweep (exactly once, concurrently), subscriptions and reconciliation."""
from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

from sqlalchemy import select

from membership import invoice_payload, sweep
from models.base import db, utcnow
from models.membership import Membership
from models.outbox import OutboxJob
from models.payment import PAID, REFUNDED, Payment
from models.user import User
from settings import settings_of
from stack_harness.bot_env import ADMIN_ID
from tests.helpers import count, wait_until
from tests.membership.flows import buy, invite_message, link_in, membership_of


def add_members(app, expiring: dict[int, timedelta]) -> None:
    now = utcnow()
    with app.app_context():
        for user_id, offset in expiring.items():
            db.session.add(Membership(user_id=user_id, expires_at=now + offset, updated_at=now))
        db.session.commit()


def jobs(app, kind: str) -> list[OutboxJob]:
    with app.app_context():
        return list(db.session.scalars(select(OutboxJob).where(OutboxJob.kind == kind)))


def test_concurrent_sweeps_remind_and_remove_each_member_once(app):
    settings = settings_of(app)
    add_members(app, {2001: -timedelta(days=2), 2002: -timedelta(days=1), 2003: timedelta(days=1),
                      2004: timedelta(days=20), 2005: -timedelta(hours=1)})  # 2005: inside the grace period
    barrier = threading.Barrier(4)
    reports = []

    def sweeper():
        with app.app_context():
            barrier.wait()
            reports.append(sweep.run(db.session, settings))
            db.session.commit()

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(u for r in reports for u in r.removed) == [2001, 2002]
    assert sorted(u for r in reports for u in r.reminded) == [2003]
    assert sorted(job.payload["user_id"] for job in jobs(app, "remove_member")) == [2001, 2002]
    with app.app_context():  # a later pass finds nothing left to do
        again = sweep.run(db.session, settings)
        assert again.removed == [] and again.reminded == []


def test_sweep_spares_whitelisted_and_mid_checkout_users(app):
    settings = settings_of(app)
    add_members(app, {2101: -timedelta(days=3), 2102: -timedelta(days=3)})
    with app.app_context():
        db.session.add(User(id=2102, first_name="", checkout_started_at=utcnow()))
        db.session.commit()
        report = sweep.run(db.session, dataclasses.replace(settings, never_remove_ids=frozenset({2101})))
        db.session.commit()
    assert report.removed == []


def test_sweep_cli_dry_run_and_at(app, runner):
    add_members(app, {2201: timedelta(days=10)})
    future = (utcnow() + timedelta(days=11)).replace(microsecond=0).isoformat()
    dry = runner.invoke(args=["sweep", "--at", future, "--dry-run"])
    assert dry.exit_code == 0 and "would remove 1 [2201]" in dry.output
    assert jobs(app, "remove_member") == []
    real = runner.invoke(args=["sweep", "--at", future])
    assert real.exit_code == 0 and "removed 1 [2201]" in real.output
    assert len(jobs(app, "remove_member")) == 1
    bad = runner.invoke(args=["sweep", "--at", "yesterday"])
    assert bad.exit_code != 0 and "ISO date-time" in bad.output


def test_expired_member_is_removed_from_the_channel_and_told(live):
    emulator = live.emulator
    assert buy(live.emulator, 2301).ok
    assert emulator.join_via_link(emulator.user(2301), link_in(invite_message(emulator, 2301))).joined
    later = (utcnow() + timedelta(days=31)).isoformat()
    result = live.app.test_cli_runner().invoke(args=["sweep", "--at", later])
    assert "removed 1 [2301]" in result.output
    live.app.extensions["outbox_sender"].notify(2)
    emulator.wait_for_call("unbanChatMember", lambda c: c.params["user_id"] == 2301, timeout=15)
    emulator.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == 2301 and "ended" in c.params["text"])
    assert 2301 not in emulator.members()
    assert emulator.member_status(2301) != "kicked", "unbanned, so they can pay and come back"


def test_recurring_plan_goes_through_an_invoice_link_and_renewals_extend(live):
    emulator = live.emulator
    user = emulator.user(2401)
    menu = emulator.send_message(user, "/plans").delivery.response_call
    since = emulator.next_call_index
    emulator.press_button(user, menu, "buy:monthly")
    link_call = emulator.wait_for_call("createInvoiceLink", since=since)
    assert link_call.params["subscription_period"] == 2592000
    message = emulator.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == 2401 and "Subscribe" in str(
        c.params.get("reply_markup")), since=since)
    paid = emulator.pay_invoice(user, link_in(message))
    assert paid.ok and paid.successful_payment["is_recurring"]
    invite_message(emulator, 2401)
    first_expiry = membership_of(live.app, 2401).expires_at
    renewal = emulator.renew_subscription(user, paid.charge_id)
    assert renewal.ok
    wait_until(lambda: membership_of(live.app, 2401).expires_at > first_expiry + timedelta(days=29),
               message="renewal extends the membership")
    assert count(live.app, Payment) == 2


def test_refund_made_on_telegrams_side_revokes_access(live):
    emulator = live.emulator
    paid = buy(live.emulator, 2501)
    assert emulator.join_via_link(emulator.user(2501), link_in(invite_message(emulator, 2501))).joined
    assert emulator.refund(emulator.user(2501), paid.charge_id).delivered
    with live.app.app_context():
        assert db.session.get(Payment, paid.charge_id).status == REFUNDED
    wait_until(lambda: 2501 not in emulator.members(), message="refunded member removed")


def test_reconciliation_credits_a_missed_payment_once_and_refunds_one_it_cannot_match(live):
    emulator, settings = live.emulator, settings_of(live.app)
    payload = invoice_payload.sign(settings.payload_secret, settings.plan("month"), 2601)
    missed = emulator.record_transaction_without_update(emulator.user(2601, has_started_bot=True), 250, payload)
    foreign = emulator.record_transaction_without_update(emulator.user(2602, has_started_bot=True), 99,
                                                         "someone-elses-product")
    runner = live.app.test_cli_runner()
    first = runner.invoke(args=["reconcile"])
    assert first.exit_code == 0 and "credited 1" in first.output, first.output
    assert "refunded 0" in first.output and "unmatched and being refunded 1" in first.output, first.output
    live.app.extensions["outbox_sender"].notify(3)
    invite_message(emulator, 2601)
    emulator.wait_for_call("refundStarPayment", lambda c: c.params["telegram_payment_charge_id"] == foreign.charge_id)
    emulator.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == ADMIN_ID and "Reconciliation" in
                           c.params["text"])
    second = runner.invoke(args=["reconcile"])
    assert "credited 0" in second.output and "refunded 0" in second.output, second.output
    with live.app.app_context():
        credited = db.session.get(Payment, missed.charge_id)
        refused = db.session.get(Payment, foreign.charge_id)
    assert credited.source == "reconcile" and credited.user_id == 2601 and credited.status == PAID
    wait_until(lambda: _status(live.app, foreign.charge_id) == REFUNDED, message="the unmatched payment refunded")
    assert refused.user_id == 2602
    assert membership_of(live.app, 2602) is None


def _status(app, charge_id: str) -> str:
    with app.app_context():
        return db.session.get(Payment, charge_id).status
