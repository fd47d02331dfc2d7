"""What tests steer the emulator with: injected faults (429, 5xx, hangs), waits, and the HTTP control surface."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any

import pytest
import requests

from botapi_emulator import BotApiEmulator
from botapi_emulator.server import THREAD_NAME
from tests.botapi_emulator.bot_calls import CHANNEL, TOKEN, call, ok_result, set_webhook


def test_429_injection_has_telegrams_shape(telegram):
    telegram.inject("sendMessage", "429", times=1, retry_after=7)
    telegram.user(7, has_started_bot=True)
    limited = call(telegram, "sendMessage", chat_id=7, text="hi")
    assert limited.status_code == 429
    assert limited.json() == {
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert call(telegram, "sendMessage", chat_id=7, text="hi").status_code == 200
    assert call(telegram, "getMe").status_code == 200  # faults are per method


def test_5xx_injection_until_cleared(telegram):
    telegram.inject("*", "5xx", times=None, status=502)
    assert [call(telegram, "getMe").status_code for _ in range(3)] == [502, 502, 502]
    telegram.clear_faults()
    assert call(telegram, "getMe").status_code == 200


def test_hang_is_released_on_release_hangs(telegram):
    telegram.inject("getMe", "hang")
    responses: list[requests.Response] = []
    client = threading.Thread(target=lambda: responses.append(call(telegram, "getMe")))
    client.start()
    telegram.wait_for_hangs(1, timeout=5)
    assert responses == [] and telegram.calls("getMe") == []
    telegram.release_hangs()
    client.join(5)
    assert responses[0].status_code == 200 and telegram.calls("getMe")[0].ok


def test_stop_drops_held_calls_and_leaves_no_connection_threads(receiver):
    telegram = BotApiEmulator(TOKEN, CHANNEL).start()
    idle = requests.Session()
    assert idle.post(f"{telegram.url}/bot{TOKEN}/getMe", timeout=5).ok  # leaves a keep-alive connection open
    telegram.inject("getMe", "hang")
    outcome: list[Any] = []

    def held_call() -> None:
        try:
            outcome.append(call(telegram, "getMe"))
        except requests.ConnectionError as error:
            outcome.append(error)

    client = threading.Thread(target=held_call)
    client.start()
    telegram.wait_for_hangs(1, timeout=5)
    telegram.stop()
    client.join(5)
    assert isinstance(outcome[0], requests.ConnectionError)
    assert [t.name for t in threading.enumerate() if t.name.startswith(THREAD_NAME)] == []
    idle.close()


def test_two_hundred_concurrent_keep_alive_connections(telegram):
    host, port = telegram.url.removeprefix("http://").split(":")
    connections = [http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(200)]
    try:
        for _round in range(2):
            for connection in connections:
                connection.request("GET", f"/bot{TOKEN}/getMe")
            for connection in connections:
                response = connection.getresponse()
                assert response.status == 200 and json.loads(response.read())["ok"]
    finally:
        for connection in connections:
            connection.close()
    assert len(telegram.calls("getMe")) == 400


def test_wait_for_call_times_out_listing_what_was_seen(telegram):
    call(telegram, "getMe")
    with pytest.raises(TimeoutError, match=r"(?s)sendMessage.*#0 getMe ok"):
        telegram.wait_for_call("sendMessage", timeout=0.1)


def test_http_control_surface(telegram, receiver):
    control = f"{telegram.url}/control"
    assert requests.post(f"{control}/send_message", json={"user_id": 1, "text": "hi"}).status_code == 409
    set_webhook(telegram, receiver)
    sent = requests.post(f"{control}/send_message", json={"user_id": 5, "first_name": "Eve", "text": "/start"}).json()
    assert sent["ok"] and sent["result"]["delivery"]["outcome"] == "acknowledged"
    since = telegram.next_call_index
    assert requests.post(f"{control}/inject", json={"method": "getMe", "kind": "429", "retry_after": 3}).json()["ok"]
    assert call(telegram, "getMe").status_code == 429
    waited = requests.get(f"{control}/wait", params={"method": "getMe", "since": since, "timeout": 2}).json()
    assert waited["result"][0]["result_or_error"]["error_code"] == 429
    calls = requests.get(f"{control}/calls", params={"method": "setWebhook"}).json()["result"]
    assert calls[0]["params"]["url"] == receiver.url
    timed_out = requests.get(f"{control}/wait", params={"method": "sendPhoto", "timeout": 0.05})
    assert timed_out.status_code == 408
    assert requests.get(f"{control}/webhook").json()["result"]["url"] == receiver.url
    assert requests.post(f"{control}/nope", json={}).status_code == 404


def test_control_surface_lists_users_and_invoices(telegram, receiver):
    control = f"{telegram.url}/control"
    set_webhook(telegram, receiver)
    requests.post(f"{control}/user", json={"user_id": 8, "first_name": "Bea"}, timeout=5)
    requests.post(f"{control}/send_message", json={"user_id": 5, "first_name": "Eve", "text": "/start"}, timeout=5)
    users = requests.get(f"{control}/users", timeout=5).json()["result"]
    # The bot and the channel's owner are Telegram's, not people a test acts as.
    assert [(user["id"], user["first_name"], user["has_started_bot"]) for user in users] == \
        [(5, "Eve", True), (8, "Bea", False)]
    link = ok_result(telegram, "createInvoiceLink", title="Month", description="30 days", payload="p",
                     currency="XTR", prices=[{"label": "Month", "amount": 250}], subscription_period=2592000)
    invoices = requests.get(f"{control}/invoices", timeout=5).json()["result"]
    assert [(i["link"], i["amount"], i["subscription_period"]) for i in invoices] == [(link, 250, 2592000)]


def test_update_ids_start_where_they_are_told():
    with BotApiEmulator(TOKEN, CHANNEL, first_update_id=7_000_000_000) as telegram:
        assert telegram.delivery.allocate_update_id() == 7_000_000_000
