"""The bot's side of the emulator tests: its token and channel, Bot API calls over HTTP, answers it gives."""

from __future__ import annotations

from typing import Any

import requests

from botapi_emulator import BotApiEmulator
from tests.botapi_emulator.webhook_receiver import Responder, WebhookReceiver

TOKEN = "123456:TEST-token"
CHANNEL = -1001000000001
FAST_RETRIES = (0.01, 0.02, 0.04)


def call(telegram: BotApiEmulator, method: str, **params: Any) -> requests.Response:
    """A bot call with a JSON body."""
    return requests.post(f"{telegram.url}/bot{TOKEN}/{method}", json=params, timeout=10)


def ok_result(telegram: BotApiEmulator, method: str, **params: Any) -> Any:
    response = call(telegram, method, **params)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def set_webhook(telegram: BotApiEmulator, receiver: WebhookReceiver, **options: Any) -> None:
    ok_result(telegram, "setWebhook", url=receiver.url, **options)


def assert_bad_request(response: requests.Response, fragment: str = "") -> None:
    body = response.json()
    assert response.status_code == 400, body
    assert body["ok"] is False and body["error_code"] == 400
    assert body["description"].startswith("Bad Request: ") and fragment in body["description"], body


STARS_INVOICE = {
    "title": "Monthly pass",
    "description": "30 days in the private channel",
    "payload": "plan:monthly",
    "currency": "XTR",
    "prices": [{"label": "Monthly", "amount": 250}],
}


def answer_pre_checkout(ok: bool, error_message: str | None = None) -> Responder:
    """A bot that answers pre-checkout queries in its webhook response and acknowledges the rest."""
    def respond(update: dict) -> tuple[int, Any]:
        query = update.get("pre_checkout_query")
        if query is None:
            return 200, None
        answer = {"method": "answerPreCheckoutQuery", "pre_checkout_query_id": query["id"], "ok": ok}
        if error_message:
            answer["error_message"] = error_message
        return 200, answer
    return respond
