"""Paid membership end to end: the emulator plays Telegram and its users, over real HTTP, on PostgreSQL."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import select

from membership import invoice_payload
from models.base import db, utcnow
from models.invite import JOINED, Invite
from models.payment import REFUNDED, Payment
from models.user import User
from settings import settings_of
from stack_harness.bot_env import ADMIN_ID, CHANNEL_ID
from tests.helpers import count, wait_until
from tests.membership.flows import buy, invite_message, link_in, membership_of


def test_from_start_to_the_channel_and_the_link_is_revoked_after_joining(live):
    emulator = live.emulator
    paid = buy(live.emulator, 1001)
    assert paid.ok, paid
    invite = invite_message(emulator, 1001)
    link = link_in(invite)
    created = emulator.calls("createChatInviteLink")
    assert len(created) == 1 and created[0].params["member_limit"] == 1 and created[0].params["expire_date"]
    assert created[0].params["chat_id"] == CHANNEL_ID
    joined = emulator.join_via_link(emulator.user(1001), link)
    assert joined.joined and 1001 in emulator.members()
    emulator.wait_for_call("revokeChatInviteLink", lambda c: c.params["invite_link"] == link)
    wait_until(lambda: count(live.app, Invite, Invite.status == JOINED) == 1, message="invite marked joined")
    record = membership_of(live.app, 1001)
    assert timedelta(days=29, hours=23) < record.expires_at - utcnow() <= timedelta(days=30)
    status = emulator.send_message(emulator.user(1001), "/status").delivery.response_call
    assert "active until" in status.params["text"]


def test_pre_checkout_rejects_tampered_foreign_and_forged_invoices(live):
    emulator, settings = live.emulator, settings_of(live.app)
    secret, month = settings.payload_secret, settings.plan("month")
    mine = invoice_payload.sign(secret, month, 1002)
    cases = {
        "tampered amount": (1002, mine, 1),
        "someone else's invoice": (1003, mine, 250),
        "forged payload": (1002, mine[:-2] + "xx", 250),
        "unknown plan": (1002, invoice_payload.sign(secret, dataclasses.replace(month, id="gold"), 1002), 250),
    }
    for name, (payer, payload, amount) in cases.items():
        answer = emulator.pre_checkout(emulator.user(payer), payload, amount)
        assert answer.answered and answer.ok is False and answer.error_message, name
    good = emulator.pre_checkout(emulator.user(1002), mine, 250)
    assert good.answered and good.ok is True
    assert count(live.app, Payment) == 0


def test_redelivered_and_replayed_payments_credit_once_and_invite_once(live):
    emulator = live.emulator
    paid = buy(live.emulator, 1004)
    invite_message(emulator, 1004)
    expires = membership_of(live.app, 1004).expires_at
    assert emulator.redeliver(paid.update["update_id"]).delivered
    replay = emulator.replay_successful_payment(paid.charge_id)
    assert replay.delivered and replay.update_id != paid.update["update_id"]
    assert count(live.app, Payment) == 1
    assert membership_of(live.app, 1004).expires_at == expires
    with live.app.app_context():
        assert db.session.scalar(select(Invite.id).where(Invite.user_id == 1004)) is not None
    assert count(live.app, Invite) == 1
    assert len(emulator.calls("createChatInviteLink")) == 1


def test_a_429_on_the_invite_link_delays_the_invite_by_retry_after(live):
    emulator = live.emulator
    emulator.inject("createChatInviteLink", "429", times=1, retry_after=1)
    assert buy(live.emulator, 1005).ok
    refused = emulator.wait_for_call("createChatInviteLink", lambda c: not c.ok)
    invite = invite_message(emulator, 1005)
    assert invite.time - refused.time >= 1.0
    assert len([c for c in emulator.calls("createChatInviteLink") if c.ok]) == 1


def test_a_stranger_using_someone_elses_link_is_removed_and_the_owner_gets_a_new_link(live):
    emulator = live.emulator
    assert buy(live.emulator, 1006).ok
    link = link_in(invite_message(emulator, 1006))
    since = emulator.next_call_index
    assert emulator.join_via_link(emulator.user(1007, "Stranger"), link).joined
    emulator.wait_for_call("banChatMember", lambda c: c.params["user_id"] == 1007, since=since)
    emulator.wait_for_call("revokeChatInviteLink", lambda c: c.params["invite_link"] == link, since=since)
    fresh = link_in(invite_message(emulator, 1006, since=since))
    assert fresh != link
    wait_until(lambda: 1007 not in emulator.members(), message="stranger removed")
    assert emulator.join_via_link(emulator.user(1006), fresh).joined


def test_admin_refund_twice_refunds_once_and_removes_the_member(live):
    emulator = live.emulator
    paid = buy(live.emulator, 1008)
    assert emulator.join_via_link(emulator.user(1008), link_in(invite_message(emulator, 1008))).joined
    admin = emulator.user(ADMIN_ID, "Admin")
    first = emulator.send_message(admin, f"/refund {paid.charge_id}")
    assert first.delivered
    emulator.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == ADMIN_ID and "Refunded" in c.params["text"])
    second = emulator.send_message(admin, f"/refund {paid.charge_id}").delivery.response_call
    assert "already refunded" in second.params["text"]
    assert len(emulator.calls("refundStarPayment")) == 1 and len(emulator.refunds()) == 1
    with live.app.app_context():
        assert db.session.get(Payment, paid.charge_id).status == REFUNDED
    wait_until(lambda: 1008 not in emulator.members(), message="refunded member removed")


def test_non_admins_are_refused_politely_and_nothing_happens(live):
    emulator = live.emulator
    stranger = emulator.user(1009)
    for command in ("/grant 1009 30", "/revoke 1", "/refund abc", "/stats"):
        reply = emulator.send_message(stranger, command).delivery.response_call
        assert reply.params["text"] == "Sorry, that command is for the channel's admins."
    assert membership_of(live.app, 1009) is None


def test_admin_grant_stats_and_revoke(live):
    emulator = live.emulator
    admin = emulator.user(ADMIN_ID, "Admin")
    usage = emulator.send_message(admin, "/grant abc -5").delivery.response_call
    assert usage.params["text"].startswith("Usage: /grant")
    granted = emulator.send_message(admin, "/grant 1010 7").delivery.response_call
    assert "Granted: user 1010" in granted.params["text"]
    link = link_in(invite_message(emulator, 1010))
    assert emulator.join_via_link(emulator.user(1010), link).joined
    stats = emulator.send_message(admin, "/stats").delivery.response_call
    assert "Active members: 1" in stats.params["text"] and "All time: 0 payments, 0 Stars" in stats.params["text"]
    revoked = emulator.send_message(admin, "/revoke 1010").delivery.response_call
    assert "Revoked" in revoked.params["text"]
    wait_until(lambda: 1010 not in emulator.members(), message="revoked member removed")


def test_start_records_the_deep_link_referral(live):
    live.emulator.send_message(live.emulator.user(1011), "/start promo_autumn")
    with live.app.app_context():
        assert db.session.get(User, 1011).referral_source == "promo_autumn"


def test_set_commands_registers_the_menu(live):
    result = live.app.test_cli_runner().invoke(args=["set-commands"])
    assert result.exit_code == 0, result.output
    assert [c["command"] for c in live.emulator.commands()] == ["plans", "status", "link", "paysupport", "terms", "help"]
