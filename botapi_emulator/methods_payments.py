"""Payments in Telegram Stars: invoices, pre-checkout answers, refunds, transactions.

The Stars rules are enforced as Telegram enforces them, because a bot that
breaks one only finds out when a real user tries to pay: currency ``XTR``,
no provider token, exactly one price, payload 1-128 bytes, and
``subscription_period`` only on createInvoiceLink, only 30 days, at most
10,000 Stars.
"""

from __future__ import annotations

import secrets
import time

from settings.telegram import STARS_CURRENCY, SUBSCRIPTION_PERIOD_SECONDS

from .errors import bad_request
from .methods_common import MethodContext, check_can_write, check_length, find_chat, find_user
from .methods_messages import inline_keyboard
from .model import Invoice
from .updates import message_update, refunded_payment_message

MAX_SUBSCRIPTION_PRICE = 10000
MAX_TRANSACTIONS_PAGE = 100
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"


def _stars_invoice(ctx: MethodContext, allow_subscription: bool) -> Invoice:
    """Check an invoice's parameters against the Stars rules and describe it."""
    params = ctx.params
    check_length(params["title"], 1, 32, "invoice title must be 1-32 characters")
    check_length(params["description"], 1, 255, "invoice description must be 1-255 characters")
    if not 1 <= len(params["payload"].encode("utf-8")) <= 128:
        raise bad_request("INVOICE_PAYLOAD_INVALID")
    if params["currency"] != STARS_CURRENCY:
        raise bad_request("currency must be XTR for payments in Telegram Stars")
    if ctx.get("provider_token"):
        raise bad_request("provider_token must be empty for payments in Telegram Stars")
    if ctx.get("max_tip_amount") or ctx.get("suggested_tip_amounts"):
        raise bad_request("tips are not supported for payments in Telegram Stars")
    prices = params["prices"]
    if len(prices) != 1:
        raise bad_request("exactly one price must be specified for payments in Telegram Stars")
    amount = prices[0]["amount"]
    if amount <= 0:
        raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
    period = ctx.get("subscription_period")
    if period is not None:
        if not allow_subscription:
            raise bad_request("subscription_period is supported only by createInvoiceLink")
        if period != SUBSCRIPTION_PERIOD_SECONDS:
            raise bad_request("SUBSCRIPTION_PERIOD_INVALID")
        if amount > MAX_SUBSCRIPTION_PRICE:
            raise bad_request("SUBSCRIPTION_PRICE_INVALID: a subscription costs at most 10000 Stars")
    return Invoice(
        title=params["title"], description=params["description"], payload=params["payload"],
        currency=STARS_CURRENCY, amount=amount, subscription_period=period,
    )


def send_invoice(ctx: MethodContext) -> dict:
    chat = find_chat(ctx, ctx.params["chat_id"])
    check_can_write(ctx, chat)
    invoice = _stars_invoice(ctx, allow_subscription=False)
    message = ctx.state.store_message(
        chat,
        ctx.bot,
        invoice={
            "title": invoice.title,
            "description": invoice.description,
            "start_parameter": ctx.get("start_parameter") or "",
            "currency": invoice.currency,
            "total_amount": invoice.amount,
        },
        reply_markup=inline_keyboard(ctx),
    )
    invoice.chat_id, invoice.message_id = chat.id, message["message_id"]
    ctx.state.invoices.append(invoice)
    return message


def create_invoice_link(ctx: MethodContext) -> str:
    invoice = _stars_invoice(ctx, allow_subscription=True)
    invoice.link = f"https://t.me/${secrets.token_urlsafe(16)}"
    ctx.state.invoices.append(invoice)
    return invoice.link


def answer_pre_checkout_query(ctx: MethodContext) -> bool:
    """One answer per query, within the pre-checkout timeout (10 s on Telegram)."""
    state = ctx.state
    query = state.pre_checkout_queries.get(ctx.params["pre_checkout_query_id"])
    too_late = query is not None and time.monotonic() - query.sent_at > state.pre_checkout_timeout
    if query is None or query.answered.is_set() or too_late:
        raise bad_request(QUERY_INVALID)
    ok = ctx.params["ok"]
    if not ok and not ctx.get("error_message"):
        raise bad_request("error_message must be specified when ok is False")
    query.ok, query.error_message = ok, ctx.get("error_message")
    query.answered.set()
    return True


def refund_star_payment(ctx: MethodContext) -> bool:
    state = ctx.state
    user = find_user(ctx, ctx.params["user_id"], "USER_ID_INVALID")
    payment = state.payments.get(ctx.params["telegram_payment_charge_id"])
    if payment is None:
        raise bad_request("CHARGE_NOT_FOUND")
    if payment.user_id != user.id:
        raise bad_request("USER_ID_INVALID")
    if payment.refunded:
        raise bad_request("CHARGE_ALREADY_REFUNDED")
    state.record_refund(payment)
    if state.notify_bot_refunds:
        chat = state.private_chat(user)
        message = refunded_payment_message(
            chat.allocate_message_id(), ctx.now(), user.to_json(), payment.refunded_payment_json()
        )
        state.keep_message(chat, message)
        ctx.emit(lambda update_id: message_update(update_id, message))
    return True


def get_star_transactions(ctx: MethodContext) -> dict:
    offset = ctx.get("offset", 0)
    limit = ctx.get("limit", MAX_TRANSACTIONS_PAGE)
    if offset < 0:
        raise bad_request("offset must be non-negative")
    if not 1 <= limit <= MAX_TRANSACTIONS_PAGE:
        raise bad_request("limit must be between 1 and 100")
    page = ctx.state.transactions[offset: offset + limit]
    return {"transactions": [transaction.to_json() for transaction in page]}


def edit_user_star_subscription(ctx: MethodContext) -> bool:
    """Cancel renewal (the user keeps access to the period's end) or re-enable one the bot cancelled."""
    state = ctx.state
    user = find_user(ctx, ctx.params["user_id"], "USER_ID_INVALID")
    charge_id = ctx.params["telegram_payment_charge_id"]
    if charge_id not in state.payments:
        raise bad_request("CHARGE_NOT_FOUND")
    subscription = state.subscription_of(charge_id)
    if subscription is None:
        raise bad_request("SUBSCRIPTION_ID_INVALID")
    if subscription.user_id != user.id:
        raise bad_request("USER_ID_INVALID")
    if not ctx.params["is_canceled"] and not subscription.canceled_by_bot:
        # A bot may re-enable only what it cancelled; the user re-enables their own.
        raise bad_request("SUBSCRIPTION_NOT_CANCELED_BY_BOT")
    subscription.canceled_by_bot = ctx.params["is_canceled"]
    return True


def get_my_star_balance(ctx: MethodContext) -> dict:
    return {"amount": ctx.state.star_balance()}


HANDLERS = {
    "sendInvoice": send_invoice,
    "createInvoiceLink": create_invoice_link,
    "answerPreCheckoutQuery": answer_pre_checkout_query,
    "refundStarPayment": refund_star_payment,
    "getStarTransactions": get_star_transactions,
    "editUserStarSubscription": edit_user_star_subscription,
    "getMyStarBalance": get_my_star_balance,
}
