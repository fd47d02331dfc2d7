"""The bot's handlers: parse the update, call the domain, collect the replies.

``handle_update`` runs inside the webhook request's app context and its one
database transaction; the route commits. Handlers never call Telegram: they
add calls to ``replies()`` (see telegram_updates/replies.py) or queue outbox jobs.
Two kinds of update skip the session: pre-checkout queries, answered from
the invoice payload alone (``answer_pre_checkout``), and the commands that
read only the settings, whose intake is their only statement (``SETTINGS_ONLY_COMMANDS``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from flask import Flask, g
from telebot import TeleBot, types, util

from membership import access, admin, billing, checkout, invites, members, payment_support, refunds, subscriptions
from models.base import db
from settings import Settings, current_settings
from telegram_updates import flood, intake
from telegram_updates.ledger import update_kind
from telegram_updates.replies import Replies
from telegram_updates.users import sender_of, set_referral_source

# Parses and dispatches only; it never makes a request, so its token is unused.
# threaded=False runs handlers in the request thread, inside its app context.
bot = TeleBot("0:dispatch-only", threaded=False)

# Kinds with handlers below. Other kinds are acknowledged without parsing,
# which also shields us from parser bugs in kinds we do not use (e.g.
# pyTelegramBotAPI 4.37.1 cannot parse purchased_paid_media).
HANDLED_KINDS = frozenset({"message", "callback_query", "chat_member", "subscription"})
# Answered without the database; listed for setWebhook's allowed_updates.
STATELESS_KINDS = frozenset({"pre_checkout_query"})

# The command menu: /help lists it and `flask set-commands` registers it with Telegram.
USER_COMMANDS = (
    ("plans", "See the plans and buy one"),
    ("status", "Until when your membership runs"),
    ("link", "A fresh invite link to the channel"),
    ("paysupport", "Help with a payment"),
    ("terms", "The terms of purchase"),
    ("help", "What this bot does"),
)
HELP_TEXT = "This bot sells access to a private channel for Telegram Stars.\n\n" + "\n".join(
    f"/{command} - {description}" for command, description in USER_COMMANDS)
ADMIN_HELP = ("Admin commands: /stats, /grant <user_id> <days>, /revoke <user_id>, /refund <charge_id>, "
              "/renewal <user_id> on|off")
NOT_ADMIN = "Sorry, that command is for the channel's admins."
SLOW_DOWN = "You are sending messages too fast. Please wait a minute, then try again."
# Commands whose handlers read only the settings: an update carrying one
# costs its intake alone, without the ORM session (_handle_from_settings).
SETTINGS_ONLY_COMMANDS = frozenset({"start", "help", "plans", "terms"})


@dataclass(frozen=True)
class Outcome:
    duplicate: bool
    webhook_response: dict | None = None
    used_session: bool = True  # else it was handled in a transaction of its own, already committed


class DatabaseOffTransaction(RuntimeError):
    """A handler on the settings-only path used the session, outside the transaction of the update's intake."""


def handle_update(raw: dict) -> Outcome:
    """Apply one update in the current transaction (the caller commits, see ``Outcome.used_session``)."""
    kind = update_kind(raw)
    sender = sender_of(raw, kind)
    if sender is not None and not _needs_database(raw, kind):
        return _handle_from_settings(raw, kind, sender)
    session = db.session
    recent = intake.admit(session, raw["update_id"], kind, sender)
    if recent is None:
        return Outcome(duplicate=True)
    g.replies = Replies(raw["update_id"])
    _dispatch(raw, kind, sender, recent)
    response = g.replies.flush(session, allow_ride=settings().reply_via_webhook_response)
    return Outcome(duplicate=False, webhook_response=response)


def _handle_from_settings(raw: dict, kind: str, sender: dict) -> Outcome:
    """An update whose handler reads nothing but the settings: no session, one reply riding on the answer.

    The intake (ledger row, user, flood counter) and the handler share a
    transaction of their own, committed before the answer. A handler that
    touched the session here would write outside it, so it is refused (the
    update becomes a dead letter).
    """
    with intake.admitted_alone(db.engine, raw["update_id"], kind, sender) as recent:
        if recent is None:
            return Outcome(duplicate=True, used_session=False)
        g.replies = Replies(raw["update_id"])
        session_was_open = _session_open()
        _dispatch(raw, kind, sender, recent)
        if _session_open() and not session_was_open:
            raise DatabaseOffTransaction(
                f"update {raw['update_id']}: its handler used the session; it must not be in SETTINGS_ONLY_COMMANDS")
        response = g.replies.rider_alone()
    return Outcome(duplicate=False, webhook_response=response, used_session=False)


def _dispatch(raw: dict, kind: str, sender: dict | None, recent: int) -> None:
    """Run the update's handler, or tell a flooding sender to slow down (once a minute)."""
    limit = settings().flood_limit_per_minute
    if flood.over_limit(raw, kind, recent, limit):
        if flood.first_over(recent, limit):
            g.replies.send_message(sender["id"], SLOW_DOWN)
    elif kind in HANDLED_KINDS:
        bot.process_new_updates([types.Update.de_json(raw)])


def _needs_database(raw: dict, kind: str) -> bool:
    """False for a private text whose handler reads only the settings, when its reply can ride on the answer.

    That is a command of SETTINGS_ONLY_COMMANDS (but /start with a referral
    code, which is stored), or text that is no command (on_anything_else).
    Matched with pyTelegramBotAPI's own command parsing, as its dispatch does.
    """
    message = raw.get("message") if kind == "message" else None
    text = message.get("text") if message else None
    if not isinstance(text, str) or not settings().reply_via_webhook_response:
        return True
    if (message.get("chat") or {}).get("type") != "private":
        return True
    if not util.is_command(text):
        return False
    command = util.extract_command(text)
    return command not in SETTINGS_ONLY_COMMANDS or (command == "start" and bool(util.extract_arguments(text)))


def _session_open() -> bool:
    return db.session.registry.has() and db.session().in_transaction()


def answer_pre_checkout(raw: dict) -> tuple[dict, Callable[[Flask], None] | None]:
    """The answerPreCheckoutQuery for a pre-checkout update, and what to do once it is sent, if anything.

    No database: Telegram cancels the payment unless we answer within 10 s,
    so the verdict comes from the signed payload alone. An accepted payer is
    noted afterwards (checkout.note_checkout), so the sweep spares them.
    """
    query = types.PreCheckoutQuery.de_json(raw["pre_checkout_query"])
    refusal = billing.pre_checkout_verdict(settings(), query.from_user.id, query.currency, query.total_amount,
                                           query.invoice_payload)
    answer = {"method": "answerPreCheckoutQuery", "pre_checkout_query_id": query.id, "ok": refusal is None}
    if refusal:
        answer["error_message"] = refusal
        return answer, None
    return answer, partial(checkout.note_checkout, user_id=query.from_user.id)


def settings() -> Settings:
    return current_settings()


def replies() -> Replies:
    return g.replies


def plans_keyboard() -> dict:
    buttons = [[{"text": f"{plan.title}: {plan.stars} ⭐" + (" / month" if plan.recurring else ""),
                 "callback_data": f"buy:{plan.id}"}] for plan in settings().plans]
    return {"inline_keyboard": buttons}


# --- users --------------------------------------------------------------------------------------

@bot.message_handler(commands=["start"], chat_types=["private"])
def on_start(message: types.Message) -> None:
    source = (util.extract_arguments(message.text) or "").strip()
    if source:
        set_referral_source(db.session, message.from_user.id, source)
    name = message.from_user.first_name or "there"
    replies().send_message(message.chat.id, f"Welcome, {name}!\n\n{HELP_TEXT}", reply_markup=plans_keyboard())


@bot.message_handler(commands=["plans"], chat_types=["private"])
def on_plans(message: types.Message) -> None:
    replies().send_message(message.chat.id, "Choose a plan:", reply_markup=plans_keyboard())


@bot.message_handler(commands=["status"], chat_types=["private"])
def on_status(message: types.Message) -> None:
    """The plan, whether it renews, and the next charge or the end."""
    user_id = message.from_user.id
    record = members.get(db.session, user_id)
    if not members.is_active(record):
        replies().send_message(message.chat.id, "You are not a member at the moment.", reply_markup=plans_keyboard())
        return
    renewing = subscriptions.renews(db.session, user_id)
    if renewing is not None:
        plan = settings().plan(renewing.plan_id)
        text = (f"Your {plan.title if plan else 'subscription'} is active and renews automatically. "
                f"Next charge: {renewing.renews_at:%Y-%m-%d}.")
    else:
        text = f"Your membership is active until {record.expires_at:%Y-%m-%d %H:%M} UTC. It does not renew by itself."
    replies().send_message(message.chat.id, text)


@bot.message_handler(commands=["paysupport"], chat_types=["private"])
def on_paysupport(message: types.Message) -> None:
    name = message.from_user.first_name or str(message.from_user.id)
    replies().send_message(message.chat.id, payment_support.support(db.session, settings(), message.from_user.id,
                                                                     name))


@bot.message_handler(commands=["terms"], chat_types=["private"])
def on_terms(message: types.Message) -> None:
    replies().send_message(message.chat.id, settings().terms_text)


@bot.message_handler(commands=["link"], chat_types=["private"])
def on_link(message: types.Message) -> None:
    """A fresh one-time link for a member: their invite failed, expired, or they left and want back in."""
    outcome = invites.request_fresh_link(db.session, message.from_user.id)
    if outcome == "queued":
        text = "A fresh invite link is on its way."
    elif outcome == "not_member":
        text = "You are not a member at the moment. Use /plans to get access."
    else:
        text = f"You got a link recently. You can ask for another after {outcome:%H:%M} UTC."
    replies().send_message(message.chat.id, text)


@bot.message_handler(commands=["help"], chat_types=["private"])
def on_help(message: types.Message) -> None:
    text = HELP_TEXT + ("\n\n" + ADMIN_HELP if admin.is_admin(settings(), message.from_user.id) else "")
    replies().send_message(message.chat.id, text)


@bot.callback_query_handler(func=lambda query: True)
def on_button(query: types.CallbackQuery) -> None:
    data = query.data or ""
    plan = settings().plan(data[4:]) if data.startswith("buy:") else None
    if plan is None:
        replies().call("answerCallbackQuery", {"callback_query_id": query.id,
                                               "text": "This button is no longer valid. Try /plans."})
        return
    replies().call("answerCallbackQuery", {"callback_query_id": query.id})
    params = billing.invoice_params(settings(), plan, query.from_user.id)
    if not plan.recurring:
        replies().call("sendInvoice", {"chat_id": query.from_user.id, **params}, chat_id=query.from_user.id)
        return
    instead = subscriptions.offer(db.session, settings(), plan, query.from_user.id, params)
    if instead:
        replies().send_message(query.from_user.id, instead)


# --- payments -----------------------------------------------------------------------------------

@bot.message_handler(content_types=["successful_payment"])
def on_payment(message: types.Message) -> None:
    paid = message.successful_payment
    charge = billing.PaidCharge(
        charge_id=paid.telegram_payment_charge_id,
        user_id=message.from_user.id,
        total_amount=paid.total_amount,
        currency=paid.currency,
        invoice_payload=paid.invoice_payload,
        is_recurring=bool(paid.is_recurring),
        subscription_expires_at=billing.from_timestamp(paid.subscription_expiration_date),
    )
    credited = billing.credit(db.session, settings(), charge, source="webhook")
    if credited is None:
        return  # this charge was recorded before: a replay
    replies().send_message(message.chat.id, _payment_answer(credited))


def _payment_answer(credited: billing.Credit) -> str:
    if credited.outcome == "unmatched":
        return ("Thank you for your payment. We could not match it to a purchase, so it is being refunded "
                "in full; you will hear from us when it is done. Please use /plans to buy again.")
    if credited.outcome == "refunded_before":
        return "This payment has already been refunded."
    if credited.outcome == "renewed":
        return f"Your subscription renewed. Your membership runs until {credited.change.after:%Y-%m-%d %H:%M} UTC."
    return ("Thank you! Your payment is received. Your membership runs until "
            f"{credited.change.after:%Y-%m-%d %H:%M} UTC; your invite link follows.")


# pyTelegramBotAPI 4.37.1 parses refunded_payment but leaves content_type
# None, so a content_types=["refunded_payment"] filter never matches.
@bot.message_handler(func=lambda message: message.refunded_payment is not None, content_types=[None])
def on_refund(message: types.Message) -> None:
    refunds.record_refund(db.session, settings(), message.refunded_payment.telegram_payment_charge_id,
                          message.from_user.id)


# --- the channel --------------------------------------------------------------------------------

@bot.chat_member_handler()
def on_member_change(change: types.ChatMemberUpdated) -> None:
    if change.chat.id != settings().channel_id:
        return
    user_id = change.new_chat_member.user.id
    inside, was_inside = (status in ("member", "restricted") for status in (
        change.new_chat_member.status, change.old_chat_member.status))
    if inside and not was_inside:
        link = change.invite_link.invite_link if change.invite_link else None
        invites.on_join(db.session, settings(), user_id, link)
    if inside != was_inside:
        members.set_in_channel(db.session, user_id, inside)


@bot.subscription_handler()
def on_subscription(update: types.BotSubscriptionUpdated) -> None:
    """Telegram says the user cancelled, re-enabled, or that a renewal failed: tell them, once."""
    text = subscriptions.on_update(db.session, update.user.id, update.invoice_payload, update.state)
    if text:
        replies().send_message(update.user.id, text)


# --- admins -------------------------------------------------------------------------------------

def admin_command(name: str):
    """Register an admin command; everyone else gets a polite refusal and nothing happens."""
    def register(handler):
        @bot.message_handler(commands=[name], chat_types=["private"])
        def guarded(message: types.Message) -> None:
            if not admin.is_admin(settings(), message.from_user.id):
                replies().send_message(message.chat.id, NOT_ADMIN)
                return
            handler(message, (util.extract_arguments(message.text) or "").split())
        return guarded
    return register


@admin_command("stats")
def on_stats(message: types.Message, args: list[str]) -> None:
    figures = admin.stats(db.session)
    replies().send_message(message.chat.id, (
        f"Active members: {figures.active_members}\n"
        f"Last 30 days: {figures.payments_30d} payments, {figures.stars_30d} Stars\n"
        f"All time: {figures.payments_total} payments, {figures.stars_total} Stars"))


@admin_command("grant")
def on_grant(message: types.Message, args: list[str]) -> None:
    user_id, days = (_whole(args[0]), _whole(args[1])) if len(args) == 2 else (None, None)
    if not user_id or not days or days > admin.MAX_GRANT_DAYS:
        replies().send_message(message.chat.id, f"Usage: /grant <user_id> <days>, days from 1 to {admin.MAX_GRANT_DAYS}.")
        return
    record = access.grant(db.session, message.from_user.id, user_id, days)
    replies().send_message(message.chat.id, f"Granted: user {user_id} is a member until "
                                            f"{record.expires_at:%Y-%m-%d %H:%M} UTC; an invite is on its way.")


@admin_command("revoke")
def on_revoke(message: types.Message, args: list[str]) -> None:
    user_id = _whole(args[0]) if len(args) == 1 else None
    if not user_id:
        replies().send_message(message.chat.id, "Usage: /revoke <user_id>")
        return
    if access.revoke(db.session, settings(), message.from_user.id, user_id):
        replies().send_message(message.chat.id, f"Revoked: user {user_id} is being removed from the channel.")
    else:
        replies().send_message(message.chat.id, f"User {user_id} has no membership.")


@admin_command("refund")
def on_admin_refund(message: types.Message, args: list[str]) -> None:
    if len(args) != 1 or len(args[0]) > 255:
        replies().send_message(message.chat.id, "Usage: /refund <telegram_payment_charge_id>")
        return
    if refunds.request_refund(db.session, message.from_user.id, args[0]) is None:
        known = billing.find_payment(db.session, args[0])
        replies().send_message(message.chat.id, "Nothing to do: that charge is already refunded."
                               if known else "No payment with that charge id.")
        return
    replies().send_message(message.chat.id, f"Refunding {args[0]}…")


@admin_command("renewal")
def on_renewal(message: types.Message, args: list[str]) -> None:
    """Stop or resume one user's subscription renewals (Telegram lets a bot resume only what it stopped)."""
    user_id = _whole(args[0]) if len(args) == 2 and args[1] in ("on", "off") else None
    if not user_id:
        replies().send_message(message.chat.id, "Usage: /renewal <user_id> on|off")
        return
    if args[1] == "off":
        done = subscriptions.stop_renewals(db.session, user_id)
        text = f"Renewals of user {user_id} stopped." if done else f"User {user_id} has no renewing subscription."
    else:
        done = subscriptions.resume_renewals(db.session, user_id)
        text = f"Renewals of user {user_id} resumed." if done else \
            f"User {user_id} has no subscription whose renewals this bot stopped."
    replies().send_message(message.chat.id, text)


def _whole(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 15 else None


@bot.message_handler(func=lambda message: True, chat_types=["private"])
def on_anything_else(message: types.Message) -> None:
    replies().send_message(message.chat.id, "I did not understand that. " + HELP_TEXT)
