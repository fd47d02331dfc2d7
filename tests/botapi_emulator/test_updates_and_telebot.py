"""Updates the emulator builds are valid per the spec and parse with telebot, and telebot works as a client."""

from __future__ import annotations

import json

import pytest
import telebot
from telebot import apihelper, types

from botapi_emulator import object_problems, updates
from tests.botapi_emulator.bot_calls import (
    CHANNEL,
    STARS_INVOICE,
    TOKEN,
    answer_pre_checkout,
    ok_result,
    set_webhook,
)


def all_builder_outputs() -> dict[str, dict]:
    alice = updates.user_json(1001, "Alice", username="alice")
    bot = updates.user_json(123456, "Bot", username="membership_test_bot", is_bot=True)
    channel = updates.channel_chat_json(CHANNEL, "Private Channel")
    link = {"invite_link": "https://t.me/+abc", "creator": bot, "creates_join_request": False,
            "is_primary": False, "is_revoked": False, "member_limit": 1}
    sent = {"message_id": 5, "from": bot, "chat": updates.private_chat_json(alice), "date": 1, "text": "Pick",
            "reply_markup": {"inline_keyboard": [[{"text": "Buy", "callback_data": "buy"}]]}}
    payment = updates.successful_payment_json("stx1", 250, "plan", "p1", subscription_expiration_date=9,
                                              is_first_recurring=True)
    return {
        "text": updates.text_message_update(1, 1, 1, alice, "/start ref_42"),
        "callback_query": updates.callback_query_update(2, "77", alice, sent, "buy"),
        "pre_checkout_query": updates.pre_checkout_query_update(3, "88", alice, "XTR", 250, "plan"),
        "successful_payment": updates.successful_payment_update(4, 6, 1, alice, payment),
        "refunded_payment": updates.refunded_payment_update(5, 7, 1, alice, {
            "currency": "XTR", "total_amount": 250, "invoice_payload": "plan", "telegram_payment_charge_id": "stx1"}),
        "chat_member_join": updates.chat_member_update(
            6, channel, alice, 1, updates.chat_member_json("left", alice), updates.chat_member_json("member", alice),
            link),
        "chat_member_ban": updates.chat_member_update(
            7, channel, bot, 1, updates.chat_member_json("member", alice), updates.chat_member_json("kicked", alice)),
        "my_chat_member": updates.my_chat_member_update(
            8, updates.private_chat_json(alice), alice, 1,
            updates.chat_member_json("member", bot), updates.chat_member_json("kicked", bot)),
        "my_chat_member_admin": updates.my_chat_member_update(
            9, channel, alice, 1, updates.chat_member_json("left", bot),
            updates.chat_member_json("administrator", bot)),
        "chat_join_request": updates.chat_join_request_update(10, channel, alice, 1, link),
        "subscription": updates.subscription_update(11, alice, "plan", "failed"),
    }


@pytest.mark.parametrize("name", sorted(all_builder_outputs()))
def test_builder_output_is_valid_and_parses_with_telebot(name):
    update = all_builder_outputs()[name]
    assert object_problems("Update", update) == []
    parsed = types.Update.de_json(json.dumps(update))
    assert parsed.update_id == update["update_id"]
    kind = updates.update_kind(update)
    assert getattr(parsed, kind) is not None


def test_emulator_produced_updates_are_valid(telegram, receiver):
    set_webhook(telegram, receiver, allowed_updates=["message", "callback_query", "pre_checkout_query", "chat_member"])
    receiver.responder = answer_pre_checkout(ok=True)
    dave = telegram.user(111, first_name="Dave", username="dave")
    telegram.send_message(dave, "/start")
    menu = ok_result(telegram, "sendMessage", chat_id=111, text="Plans",
                     reply_markup={"inline_keyboard": [[{"text": "Buy", "callback_data": "buy"}]]})
    telegram.press_button(dave, menu, "buy")
    payment = telegram.pay_invoice(dave, ok_result(telegram, "createInvoiceLink", **STARS_INVOICE))
    telegram.refund(dave, payment.charge_id)
    telegram.join_via_link(dave, ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL)["invite_link"])
    for update in receiver.updates():
        assert object_problems("Update", update) == [], update
        types.Update.de_json(json.dumps(update))
    assert len(receiver.updates()) == 6


def test_telebot_client_works_against_the_emulator(telegram):
    previous = apihelper.API_URL
    apihelper.API_URL = telegram.url + "/bot{0}/{1}"
    try:
        bot = telebot.TeleBot(TOKEN, threaded=False)
        telegram.user(7, has_started_bot=True)
        assert bot.get_me().username == "membership_test_bot"
        markup = types.InlineKeyboardMarkup([[types.InlineKeyboardButton("Buy", callback_data="buy")]])
        assert bot.send_message(7, "Plans", reply_markup=markup).reply_markup.keyboard[0][0].callback_data == "buy"
        assert bot.set_webhook("http://127.0.0.1:9/webhook", allowed_updates=["message", "chat_member"])
        assert telegram.webhook_info()["allowed_updates"] == ["message", "chat_member"]
        link = bot.create_chat_invite_link(CHANNEL, name="order 1", member_limit=1)
        assert link.member_limit == 1
        prices = [types.LabeledPrice("Monthly", 250)]
        invoice_link = bot.create_invoice_link("Monthly", "30 days", "plan:m", None, "XTR", prices,
                                               subscription_period=2592000)
        assert invoice_link.startswith("https://t.me/$")
        assert bot.send_invoice(7, "Monthly", "30 days", "plan:m", None, "XTR", prices).invoice.total_amount == 250
    finally:
        apihelper.API_URL = previous
