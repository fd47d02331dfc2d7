"""Telegram Stars: invoice rules, pre-checkout queries, payments, subscriptions and refunds."""

from __future__ import annotations

from typing import Any

import pytest

from botapi_emulator import BotApiEmulator, object_problems
from tests.botapi_emulator.bot_calls import (
    CHANNEL,
    FAST_RETRIES,
    STARS_INVOICE,
    TOKEN,
    answer_pre_checkout,
    assert_bad_request,
    call,
    ok_result,
    set_webhook,
)


@pytest.mark.parametrize(
    ("method", "changes", "fragment"),
    [
        ("createInvoiceLink", {"currency": "USD"}, "XTR"),
        ("createInvoiceLink", {"prices": [{"label": "a", "amount": 1}, {"label": "b", "amount": 2}]}, "one price"),
        ("createInvoiceLink", {"provider_token": "284685063:TEST:abc"}, "provider_token"),
        ("createInvoiceLink", {"payload": "x" * 129}, "INVOICE_PAYLOAD_INVALID"),
        ("createInvoiceLink", {"payload": ""}, "INVOICE_PAYLOAD_INVALID"),
        ("createInvoiceLink", {"subscription_period": 86400}, "SUBSCRIPTION_PERIOD_INVALID"),
        ("createInvoiceLink", {"subscription_period": 2592000, "prices": [{"label": "x", "amount": 10001}]},
         "SUBSCRIPTION_PRICE_INVALID"),
        ("sendInvoice", {"subscription_period": 2592000}, "createInvoiceLink"),
        ("sendInvoice", {"currency": "EUR"}, "XTR"),
    ],
)
def test_stars_rules_are_enforced(telegram, method, changes, fragment):
    telegram.user(7, has_started_bot=True)
    params = {**STARS_INVOICE, **changes}
    if method == "sendInvoice":
        params["chat_id"] = 7
    assert_bad_request(call(telegram, method, **params), fragment)


def test_valid_stars_invoices_are_accepted(telegram):
    telegram.user(7, has_started_bot=True)
    link = ok_result(telegram, "createInvoiceLink", **STARS_INVOICE, subscription_period=2592000)
    assert link.startswith("https://t.me/$")
    message = ok_result(telegram, "sendInvoice", chat_id=7, **STARS_INVOICE, provider_token="")
    assert message["invoice"]["total_amount"] == 250 and not object_problems("Message", message)


def test_pay_invoice_after_ok_answer_delivers_successful_payment(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = answer_pre_checkout(ok=True)
    telegram.user(51, has_started_bot=True)
    invoice = ok_result(telegram, "sendInvoice", chat_id=51, **STARS_INVOICE)

    payment = telegram.pay_invoice(51, invoice)

    assert payment.ok and payment.delivery.delivered
    query, paid = receiver.updates()
    assert query["pre_checkout_query"]["invoice_payload"] == "plan:monthly"
    assert query["pre_checkout_query"]["total_amount"] == 250
    successful = paid["message"]["successful_payment"]
    assert successful["telegram_payment_charge_id"] == payment.charge_id and successful["currency"] == "XTR"
    assert "is_recurring" not in successful
    transactions = ok_result(telegram, "getStarTransactions")["transactions"]
    assert [t["id"] for t in transactions] == [payment.charge_id]
    assert transactions[0]["source"]["invoice_payload"] == "plan:monthly"


def test_pay_invoice_declined_makes_no_payment(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = answer_pre_checkout(ok=False, error_message="Plan sold out")
    link = ok_result(telegram, "createInvoiceLink", **STARS_INVOICE)

    payment = telegram.pay_invoice(telegram.user(52), link)

    assert not payment.ok and payment.reason == "declined" and payment.error_message == "Plan sold out"
    assert len(receiver.updates()) == 1 and telegram.star_transactions() == []


def test_pre_checkout_without_answer_times_out(receiver):
    with BotApiEmulator(TOKEN, CHANNEL, retry_delays=FAST_RETRIES, pre_checkout_timeout=0.3) as telegram:
        set_webhook(telegram, receiver)
        answer = telegram.pre_checkout(telegram.user(53), payload="plan:monthly", total_amount=250)
        assert not answer.answered
        late = call(telegram, "answerPreCheckoutQuery", pre_checkout_query_id=answer.query_id, ok=True)
        assert_bad_request(late, "query is too old")


def test_bot_may_answer_pre_checkout_with_its_own_call(telegram, receiver):
    set_webhook(telegram, receiver)

    def answer_over_http(update: dict) -> tuple[int, Any]:
        if "pre_checkout_query" in update:
            query_id = update["pre_checkout_query"]["id"]
            ok_result(telegram, "answerPreCheckoutQuery", pre_checkout_query_id=query_id, ok=True)
            assert_bad_request(call(telegram, "answerPreCheckoutQuery", pre_checkout_query_id=query_id, ok=True))
        return 200, None

    receiver.responder = answer_over_http
    answer = telegram.pre_checkout(telegram.user(54), payload="tampered", total_amount=1, currency="XTR")
    assert answer.answered and answer.ok


def test_subscription_payment_renewal_and_cancellation(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = answer_pre_checkout(ok=True)
    link = ok_result(telegram, "createInvoiceLink", **STARS_INVOICE, subscription_period=2592000)
    first = telegram.pay_invoice(telegram.user(61), link)
    assert first.successful_payment["is_recurring"] and first.successful_payment["is_first_recurring"]
    assert first.successful_payment["subscription_expiration_date"] >= telegram.now() + 2592000 - 5

    renewal = telegram.renew_subscription(61, first.charge_id)
    assert renewal.ok and renewal.charge_id != first.charge_id
    assert renewal.successful_payment["is_first_recurring"] is False
    assert (renewal.successful_payment["subscription_expiration_date"]
            == first.successful_payment["subscription_expiration_date"] + 2592000)
    assert telegram.star_transactions()[1]["source"]["subscription_period"] == 2592000

    ok_result(telegram, "editUserStarSubscription", user_id=61, telegram_payment_charge_id=first.charge_id,
              is_canceled=True)
    assert telegram.renew_subscription(61, first.charge_id).reason == "subscription_canceled"


def test_refunds_by_bot_and_by_telegram(telegram, receiver):
    set_webhook(telegram, receiver)
    bob = telegram.user(71)
    bot_refunded = telegram.record_transaction_without_update(bob, 250, "plan:monthly")
    ok_result(telegram, "refundStarPayment", user_id=71, telegram_payment_charge_id=bot_refunded.charge_id)
    again = call(telegram, "refundStarPayment", user_id=71, telegram_payment_charge_id=bot_refunded.charge_id)
    assert_bad_request(again, "CHARGE_ALREADY_REFUNDED")

    disputed = telegram.record_transaction_without_update(bob, 100, "plan:weekly")
    result = telegram.refund(bob, disputed.charge_id)
    assert result.update["message"]["refunded_payment"]["telegram_payment_charge_id"] == disputed.charge_id

    page = ok_result(telegram, "getStarTransactions", offset=0, limit=10)["transactions"]
    ids = [(transaction["id"], "receiver" in transaction) for transaction in page]
    assert ids == [(bot_refunded.charge_id, False), (bot_refunded.charge_id, True),
                   (disputed.charge_id, False), (disputed.charge_id, True)]
    assert_bad_request(call(telegram, "getStarTransactions", limit=101), "limit")


def test_replayed_successful_payment_gets_a_new_update_id(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = answer_pre_checkout(ok=True)
    payment = telegram.pay_invoice(telegram.user(72), ok_result(telegram, "createInvoiceLink", **STARS_INVOICE))
    replay = telegram.replay_successful_payment(payment.charge_id)
    assert replay.update_id > payment.update["update_id"]
    assert replay.update["message"] == payment.update["message"]
