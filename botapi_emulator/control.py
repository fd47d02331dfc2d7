"""The HTTP control surface: the Python API in JSON, for another process.

The benchmark and the sandbox run the emulator in their own process (or
``python -m botapi_emulator``) and drive it over HTTP.  Every endpoint takes
a JSON object (POST body, or query string for GET) and answers
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}`` with
400 (bad arguments), 404 (unknown endpoint), 408 (wait timed out) or 409
(the bot has no webhook yet).  Users are named by ``user_id`` (created on
first use; ``first_name``/``username`` may be given).  The list of endpoints
is in the package docstring.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Callable

from .delivery import NoWebhookError

if TYPE_CHECKING:
    from .emulator import BotApiEmulator

logger = logging.getLogger(__name__)

Endpoint = Callable[["BotApiEmulator", dict], Any]


def _user(emulator: "BotApiEmulator", args: dict):
    return emulator.user(int(args["user_id"]), args.get("first_name"), args.get("username"))


def _message_ref(args: dict) -> tuple[int, int]:
    return int(args["chat_id"]), int(args["message_id"])


def _invoice_ref(args: dict):
    invoice = args["invoice"]
    return invoice if isinstance(invoice, str) else _message_ref(invoice)


def _optional_int(args: dict, name: str, default: int | None = None) -> int | None:
    value = args.get(name)
    return default if value in (None, "") else int(value)


def _info(emulator: "BotApiEmulator", args: dict) -> dict:
    return {"url": emulator.url, "token": emulator.token, "channel_id": emulator.channel_id,
            "bot": emulator.bot_user.to_json(), "now": emulator.now()}


def _wait(emulator: "BotApiEmulator", args: dict) -> list[dict]:
    calls = emulator.wait_for_calls(
        args.get("method") or None, _optional_int(args, "count", 1),
        timeout=float(args.get("timeout") or 10), since=_optional_int(args, "since", 0),
    )
    return [call.to_json() for call in calls]


def _user_details(emulator: "BotApiEmulator", args: dict) -> dict:
    detail_names = ("has_started_bot", "has_blocked_bot", "language_code", "last_name")
    details = {key: args[key] for key in detail_names if key in args}
    return emulator.user(int(args["user_id"]), args.get("first_name"), args.get("username"), **details).to_json()


def _release(emulator: "BotApiEmulator", args: dict) -> bool:
    emulator.release_hangs()
    return True


def _clear(emulator: "BotApiEmulator", args: dict) -> bool:
    emulator.clear_faults()
    return True


def _inject(emulator: "BotApiEmulator", args: dict) -> bool:
    emulator.inject(
        args["method"], str(args["kind"]), times=args.get("times", 1), retry_after=int(args.get("retry_after", 2)),
        status=int(args.get("status", 500)), delay=float(args.get("delay", 1.0)),
    )
    return True


def _latency(emulator: "BotApiEmulator", args: dict) -> bool:
    emulator.set_latency(args.get("method", "*"), float(args["seconds"]))
    return True


def _advance_time(emulator: "BotApiEmulator", args: dict) -> int:
    emulator.advance_time(float(args["seconds"]))
    return emulator.now()


# name -> (HTTP method, endpoint)
ENDPOINTS: dict[str, tuple[str, Endpoint]] = {
    "info": ("GET", _info),
    "user": ("POST", _user_details),
    "deliver": ("POST", lambda e, a: e.deliver(a["update"]).to_json()),
    "redeliver": ("POST", lambda e, a: e.redeliver(int(a["update_id"])).to_json()),
    "send_message": ("POST", lambda e, a: e.send_message(_user(e, a), a["text"]).to_json()),
    "press_button": ("POST", lambda e, a: e.press_button(_user(e, a), _message_ref(a), a["callback_data"]).to_json()),
    "pay_invoice": ("POST", lambda e, a: e.pay_invoice(_user(e, a), _invoice_ref(a)).to_json()),
    "pre_checkout": ("POST", lambda e, a: e.pre_checkout(
        _user(e, a), a["payload"], int(a["total_amount"]), a.get("currency", "XTR")).to_json()),
    "renew_subscription": ("POST", lambda e, a: e.renew_subscription(_user(e, a), a["charge_id"]).to_json()),
    "replay_successful_payment": ("POST", lambda e, a: e.replay_successful_payment(
        a["charge_id"], _optional_int(a, "update_id")).to_json()),
    "refund": ("POST", lambda e, a: e.refund(_user(e, a), a["charge_id"]).to_json()),
    "update_subscription": ("POST", lambda e, a: e.update_subscription(
        _user(e, a), a["charge_id"], a["state"]).to_json()),
    "record_transaction": ("POST", lambda e, a: e.record_transaction_without_update(
        _user(e, a), int(a["amount"]), a["payload"], bool(a.get("subscription", False))).charge_id),
    "join": ("POST", lambda e, a: e.join_via_link(_user(e, a), a["invite_link"]).to_json()),
    "leave": ("POST", lambda e, a: e.leave(_user(e, a), _optional_int(a, "chat_id")).to_json()),
    "block_bot": ("POST", lambda e, a: e.block_bot(_user(e, a)).to_json()),
    "unblock_bot": ("POST", lambda e, a: e.unblock_bot(_user(e, a)).to_json()),
    "inject": ("POST", _inject),
    "latency": ("POST", _latency),
    "clear_faults": ("POST", _clear),
    "release_hangs": ("POST", _release),
    "advance_time": ("POST", _advance_time),
    "calls": ("GET", lambda e, a: [
        c.to_json() for c in e.calls(a.get("method") or None, _optional_int(a, "since", 0))]),
    "wait": ("GET", _wait),
    "messages": ("GET", lambda e, a: e.messages(int(a["chat_id"]))),
    "members": ("GET", lambda e, a: e.members(_optional_int(a, "chat_id"))),
    "invite_links": ("GET", lambda e, a: e.invite_links(_optional_int(a, "chat_id"))),
    "users": ("GET", lambda e, a: e.users()),
    "invoices": ("GET", lambda e, a: e.invoices()),
    "transactions": ("GET", lambda e, a: e.star_transactions()),
    "payments": ("GET", lambda e, a: e.payments()),
    "webhook": ("GET", lambda e, a: e.webhook_info()),
}


class ControlSurface:
    def __init__(self, emulator: "BotApiEmulator") -> None:
        self._emulator = emulator

    def handle(self, http_method: str, name: str, query: dict, body: bytes) -> tuple[int, dict]:
        route = ENDPOINTS.get(name)
        if route is None:
            return 404, {"ok": False, "error": f"unknown control endpoint {name!r}; known: {sorted(ENDPOINTS)}"}
        expected_method, endpoint = route
        if http_method != expected_method:
            return 405, {"ok": False, "error": f"{name} takes {expected_method}"}
        try:
            args = dict(query)
            if body:
                decoded = json.loads(body)
                if not isinstance(decoded, dict):
                    raise ValueError("the body must be a JSON object")
                args.update(decoded)
            return 200, {"ok": True, "result": endpoint(self._emulator, args)}
        except NoWebhookError as error:
            return 409, {"ok": False, "error": str(error)}
        except TimeoutError as error:
            return 408, {"ok": False, "error": str(error)}
        except (KeyError, ValueError, TypeError) as error:
            return 400, {"ok": False, "error": f"{type(error).__name__}: {error}"}
        except Exception as error:
            logger.exception("control endpoint %s failed", name)
            return 500, {"ok": False, "error": f"emulator error: {type(error).__name__}: {error}"}
