"""The bot's handlers: parse the update, call the domain, collect the replies.

``handle_update`` runs inside the webhook request's app context and its one
database transaction; the route commits. Handlers never call Telegram: they
add calls to ``g.replies`` (see replies.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g
from telebot import TeleBot, types

from config import Settings
from extensions import db
from replies import Replies
from update_ledger import claim_update, update_kind
from users import remember_user, sender_of

# Parses and dispatches only; it never makes a request, so its token is unused.
# threaded=False runs handlers in the request thread, inside its app context.
bot = TeleBot("0:dispatch-only", threaded=False)

# Kinds with handlers below. Other kinds are acknowledged without parsing,
# which also shields us from parser bugs in kinds we do not use (e.g.
# pyTelegramBotAPI 4.37.1 cannot parse purchased_paid_media).
HANDLED_KINDS = frozenset({"message", "callback_query", "pre_checkout_query", "chat_member"})

HELP_TEXT = (
    "This bot sells access to a private channel for Telegram Stars.\n\n"
    "/plans - see the plans and buy one\n"
    "/status - see until when your membership runs\n"
    "/help - this message"
)


@dataclass(frozen=True)
class Outcome:
    duplicate: bool
    webhook_response: dict | None = None
    queued_calls: int = 0


def handle_update(raw: dict) -> Outcome:
    """Apply one update in the current transaction (the caller commits)."""
    session = db.session
    kind = update_kind(raw)
    if not claim_update(session, raw["update_id"], kind):
        return Outcome(duplicate=True)
    sender = sender_of(raw, kind)
    if sender is not None:
        remember_user(session, sender)
    g.replies = Replies(raw["update_id"])
    if kind in HANDLED_KINDS:
        bot.process_new_updates([types.Update.de_json(raw)])
    response, queued = g.replies.flush(session, allow_ride=settings().reply_via_webhook_response)
    return Outcome(duplicate=False, webhook_response=response, queued_calls=queued)


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def replies() -> Replies:
    return g.replies


@bot.message_handler(commands=["start"], chat_types=["private"])
def on_start(message: types.Message) -> None:
    name = message.from_user.first_name or "there"
    replies().send_message(message.chat.id, f"Welcome, {name}!\n\n{HELP_TEXT}")


@bot.message_handler(commands=["help"], chat_types=["private"])
def on_help(message: types.Message) -> None:
    replies().send_message(message.chat.id, HELP_TEXT)
