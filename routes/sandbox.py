"""The local sandbox's page at ``/`` and its JSON API under ``/sandbox/api`` (local sandbox mode only).

Registered by the factory only when ``settings.local_sandbox`` (no
BOT_TOKEN, embedded SQLite); a real server answers 404 here. The page plays
the users and Telegram through the emulator's control surface
(``local_sandbox.emulator_control``): every message, button press, payment
and join becomes an update the emulator delivers to the real webhook, so the
bot behaves exactly as in production. The admin view reads the database.
No database connection is held while the emulator is called: a route either
calls the emulator or reads the database, and the clock does the first, then
the second.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from flask import Blueprint, current_app, jsonify, render_template, request

import local_sandbox
from bot_outbox.runners import commit_and_wake
from local_sandbox import admin_view
from local_sandbox.emulator_control import ControlError, EmulatorControl
from local_sandbox.telegram_process import CHANNEL_TITLE
from membership import sweep
from models.base import db
from settings import current_settings

ASSETS = Path(local_sandbox.__file__).resolve().parent
bp = Blueprint("sandbox", __name__, template_folder=str(ASSETS / "templates"),
               static_folder=str(ASSETS / "static"), static_url_path="/sandbox/static")

FIRST_TEST_USER_ID = 1001
MAX_CLOCK_STEP_DAYS = 400
# What an update's delivery became, in words for the page.
OUTCOMES = {
    "acknowledged": "delivered",
    "filtered": "not sent: the bot's webhook does not ask for this kind of update (allowed_updates)",
    "gave_up": "not delivered: the webhook kept failing",
}


class BadInput(ValueError):
    pass


def telegram() -> EmulatorControl:
    return EmulatorControl(current_settings().telegram_api_url)


@bp.errorhandler(ControlError)
def emulator_refused(error: ControlError):
    return jsonify(error=str(error)), error.status


@bp.errorhandler(BadInput)
def bad_input(error: BadInput):
    return jsonify(error=str(error)), 400


@bp.get("/")
def page():
    return render_template("sandbox.html", channel_title=CHANNEL_TITLE)


# --- Telegram's side: chats, the channel, the clock ----------------------------------------------

@bp.get("/sandbox/api/world")
def world():
    """What the page shows of Telegram: people, one user's chat with the bot, the channel, the clock."""
    user_id = request.args.get("user_id", type=int)
    info = telegram().get("info")
    users = telegram().get("users")
    chat = telegram().get("messages", chat_id=user_id) if user_id else []
    member_ids = telegram().get("members")
    names = {user["id"]: user["first_name"] for user in users}
    names[info["bot"]["id"]] = info["bot"]["first_name"]
    members = [{"id": member, "name": names.get(member, "Channel owner"),
                "role": "bot" if member == info["bot"]["id"] else "member" if member in names else "owner"}
               for member in member_ids]
    return jsonify(now=info["now"], clock_offset=info["now"] - int(time.time()), bot=info["bot"],
                   channel={"id": info["channel_id"], "title": CHANNEL_TITLE, "members": members},
                   admins=sorted(current_settings().admin_ids), users=users, chat=chat)


@bp.post("/sandbox/api/users")
def new_user():
    name = str(_body().get("first_name") or "").strip()[:64]
    if not name:
        raise BadInput("give the new user a first name")
    taken = [user["id"] for user in telegram().get("users")]
    user_id = max([FIRST_TEST_USER_ID - 1, *taken]) + 1
    return jsonify(telegram().post("user", user_id=user_id, first_name=name))


@bp.post("/sandbox/api/clock")
def move_clock():
    """Move Telegram's clock (forward by ``days``, or ``back_to_today``), then sweep at that moment."""
    body = _body()
    if body.get("back_to_today"):
        now = telegram().get("info")["now"]
        telegram().post("advance_time", seconds=int(time.time()) - now)
        return jsonify(now=int(time.time()), sweep=None)
    days = _number(body, "days")
    if not 0 < days <= MAX_CLOCK_STEP_DAYS:
        raise BadInput(f"move the clock forward by 0 to {MAX_CLOCK_STEP_DAYS} days")
    now = telegram().post("advance_time", seconds=days * 86400)
    return jsonify(now=now, sweep=_sweep_at(now))


@bp.post("/sandbox/api/sweep")
def run_sweep():
    """The expiry sweep at Telegram's current time (the server's own timer uses the real time)."""
    now = telegram().get("info")["now"]
    return jsonify(now=now, sweep=_sweep_at(now))


def _sweep_at(unix_time: int) -> dict:
    report = sweep.run(db.session, current_settings(), now=datetime.fromtimestamp(unix_time, timezone.utc))
    commit_and_wake(current_app, db.session)
    return {"at": report.at.isoformat(), "reminded": report.reminded, "removed": report.removed,
            "summary": report.summary()}


# --- what users do --------------------------------------------------------------------------------

@bp.post("/sandbox/api/send")
def send():
    body = _body()
    text = str(body.get("text") or "").strip()
    if not text:
        raise BadInput("type a message first")
    return jsonify(_delivery(telegram().post("send_message", user_id=_whole(body, "user_id"), text=text[:4096])))


@bp.post("/sandbox/api/press")
def press():
    body = _body()
    user_id = _whole(body, "user_id")
    result = telegram().post("press_button", user_id=user_id, chat_id=user_id,
                             message_id=_whole(body, "message_id"), callback_data=str(body.get("callback_data", "")))
    return jsonify(_delivery(result))


@bp.get("/sandbox/api/invoice")
def invoice():
    """An invoice's title and price for the payment sheet, by link or by message."""
    link, message_id = request.args.get("link"), request.args.get("message_id", type=int)
    for found in reversed(telegram().get("invoices")):
        if (link and found["link"] == link) or (message_id and found["message_id"] == message_id):
            return jsonify({key: found[key] for key in ("title", "description", "amount", "subscription_period")})
    raise ControlError(404, "no such invoice: the bot never made it")


@bp.post("/sandbox/api/pay")
def pay():
    """Telegram's part of a payment: pre-checkout to the bot, then the payment, or the bot's refusal."""
    body = _body()
    payer = _whole(body, "user_id")
    # Anyone may pay an invoice they were shown (a forwarded one too); the bot decides at pre-checkout.
    invoice_ref = body.get("link") or {"chat_id": _whole(body, "chat_id") if "chat_id" in body else payer,
                                       "message_id": _whole(body, "message_id")}
    result = telegram().post("pay_invoice", user_id=payer, invoice=invoice_ref)
    pre_checkout = result.get("pre_checkout") or {}
    return jsonify(ok=result["ok"], reason=result["reason"], error_message=result["error_message"],
                   charge_id=result["charge_id"], pre_checkout_answered=pre_checkout.get("answered"))


@bp.post("/sandbox/api/join")
def join():
    body = _body()
    result = telegram().post("join", user_id=_whole(body, "user_id"), invite_link=str(body.get("invite_link", "")))
    return jsonify(joined=result["joined"], reason=result["reason"])


@bp.post("/sandbox/api/leave")
def leave():
    return jsonify(_delivery(telegram().post("leave", user_id=_whole(_body(), "user_id"))))


# --- what Telegram does on its own (the admin view's buttons) -------------------------------------

@bp.get("/sandbox/api/admin")
def admin():
    return jsonify(admin_view.snapshot(db.session))


@bp.post("/sandbox/api/refund")
def refund():
    """Telegram refunds a payment on its own (a dispute): the bot hears of it as refunded_payment."""
    body = _body()
    return jsonify(_delivery(telegram().post("refund", user_id=_whole(body, "user_id"),
                                             charge_id=str(body.get("charge_id", "")))))


@bp.post("/sandbox/api/renew")
def renew():
    """Telegram charges a subscription's next period."""
    body = _body()
    result = telegram().post("renew_subscription", user_id=_whole(body, "user_id"),
                             charge_id=str(body.get("charge_id", "")))
    return jsonify(ok=result["ok"], reason=result["reason"], charge_id=result["charge_id"])


@bp.post("/sandbox/api/renewal_failed")
def renewal_failed():
    """Bot API 10.2: a renewal payment failed, told by a ``subscription`` update (state ``failed``)."""
    body = _body()
    return jsonify(_delivery(telegram().post("update_subscription", user_id=_whole(body, "user_id"),
                                             charge_id=str(body.get("charge_id", "")), state="failed")))


@bp.post("/sandbox/api/redeliver")
def redeliver():
    """Telegram sends an update again under the same update_id, as after a lost answer."""
    return jsonify(_delivery(telegram().post("redeliver", update_id=_whole(_body(), "update_id"))))


def _delivery(action: dict) -> dict:
    """An action's delivery, as the page reports it."""
    delivery = action.get("delivery", action)
    return {"update_id": delivery["update_id"], "outcome": delivery["outcome"],
            "said": OUTCOMES.get(delivery["outcome"], delivery["outcome"]), "status": delivery["status"],
            "answer": delivery["body"] or ""}


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadInput("send a JSON object")
    return body


def _whole(body: dict, name: str) -> int:
    value = body.get(name)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if type(value) is not int:
        raise BadInput(f"{name} must be a whole number")
    return value


def _number(body: dict, name: str) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{name} must be a number")
    return float(value)
