"""A payer's steps through the emulator, shared by the membership tests."""
from __future__ import annotations

from models.base import db
from models.membership import Membership


def buy(emulator, user_id: int, plan: str = "month", first_name: str = "Payer"):
    """/start, press the plan's button, pay the invoice: the PaymentResult."""
    user = emulator.user(user_id, first_name)
    start = emulator.send_message(user, "/start")
    assert start.delivered
    menu = start.delivery.response_call
    assert menu.method == "sendMessage" and "buy:month" in str(menu.params["reply_markup"])
    since = emulator.next_call_index
    emulator.press_button(user, menu, f"buy:{plan}")
    invoice = emulator.wait_for_call("sendInvoice", lambda c: c.params["chat_id"] == user_id, since=since)
    return emulator.pay_invoice(user, invoice)


def invite_message(emulator, user_id: int, since: int = 0):
    return emulator.wait_for_call(
        "sendMessage", lambda c: c.ok and c.params["chat_id"] == user_id and "t.me/" in c.params["text"],
        since=since, timeout=15)


def link_in(call) -> str:
    return call.params["reply_markup"]["inline_keyboard"][0][0]["url"]


def membership_of(app, user_id: int) -> Membership | None:
    with app.app_context():
        return db.session.get(Membership, user_id)
