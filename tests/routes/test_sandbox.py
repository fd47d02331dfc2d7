"""The sandbox's page and JSON API, without a browser: the app behind a real HTTP server,
the sandbox's own emulator as Telegram, wired the way the gunicorn master wires it."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

from local_sandbox import launcher
from local_sandbox.telegram_process import make_emulator
from main import create_app
from settings import load_settings, settings_of
from settings.sandbox import SANDBOX_ADMIN_ID, SANDBOX_CHANNEL_ID
from stack_harness.bot_env import BOT_TOKEN, CHANNEL_ID, WEBHOOK_SECRET
from tests.helpers import build_app, wait_until
from worker_process import lifecycle

ADA = launcher.DEMO_BUYER["user_id"]


@dataclass
class Sandbox:
    client: object
    telegram: object

    def call(self, path: str, body: dict | None = None, status: int = 200) -> dict:
        response = (self.client.get(f"/sandbox/api/{path}") if body is None
                    else self.client.post(f"/sandbox/api/{path}", json=body))
        assert response.status_code == status, response.get_data(as_text=True)
        return response.json

    def chat(self, user_id: int = ADA) -> list[dict]:
        return self.call(f"world?user_id={user_id}")["chat"]

    def wait_for_bot_message(self, containing: str, user_id: int = ADA) -> dict:
        return wait_until(lambda: next((message for message in reversed(self.chat(user_id))
                                        if containing in message.get("text", "")), None),
                          message=f"a bot message containing {containing!r}")


@pytest.fixture
def sandbox(tmp_path):
    with make_emulator(0, SANDBOX_CHANNEL_ID) as telegram:
        port = int(telegram.url.rsplit(":", 1)[1])
        app = build_app({"DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3", "WEBHOOK_SECRET": WEBHOOK_SECRET,
                         "SANDBOX_TELEGRAM_PORT": str(port)}, outbox_poll_seconds=0.2)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="sandbox-webhook", daemon=True)
        thread.start()
        try:
            launcher.wire(settings_of(app), f"http://127.0.0.1:{server.server_port}/webhook")
            yield Sandbox(app.test_client(), telegram)
        finally:
            server.shutdown()
            thread.join(5)
            lifecycle.shutdown(app)


def test_a_real_bot_has_no_page(tmp_path):
    app = create_app(load_settings({"BOT_TOKEN": BOT_TOKEN, "CHANNEL_ID": str(CHANNEL_ID),
                                    "DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3"}))
    client = app.test_client()
    assert client.get("/").status_code == 404
    assert client.get("/sandbox/api/world").status_code == 404
    assert client.post("/sandbox/api/send", json={"user_id": 1, "text": "/start"}).status_code == 404


def test_local_mode_answers_the_page_and_its_assets(sandbox):
    page = sandbox.client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "Admin view" in html and "Demo Channel" in html
    for asset in re.findall(r'(?:href|src)="(/sandbox/static/[^"]+)"', html):
        assert sandbox.client.get(asset).status_code == 200, asset


def test_the_world_shows_the_demo_people_the_bot_and_the_channel(sandbox):
    world = sandbox.call("world")
    assert [(user["id"], user["first_name"]) for user in world["users"]] == [(SANDBOX_ADMIN_ID, "Admin"), (ADA, "Ada")]
    assert world["admins"] == [SANDBOX_ADMIN_ID] and world["chat"] == []
    assert world["channel"]["id"] == SANDBOX_CHANNEL_ID
    assert {member["role"] for member in world["channel"]["members"]} == {"owner", "bot"}
    assert world["clock_offset"] in (-1, 0, 1)


def test_start_buy_join_through_the_json_api(sandbox):
    started = sandbox.call("send", {"user_id": ADA, "text": "/start"})
    assert started["outcome"] == "acknowledged" and started["status"] == 200
    welcome = sandbox.wait_for_bot_message("Welcome, Ada")
    plan = welcome["reply_markup"]["inline_keyboard"][1][0]  # One month, paid once
    sandbox.call("press", {"user_id": ADA, "message_id": welcome["message_id"], "callback_data": plan["callback_data"]})
    invoice = wait_until(lambda: next((m for m in sandbox.chat() if "invoice" in m), None), message="the invoice")
    details = sandbox.call(f"invoice?message_id={invoice['message_id']}")
    assert details["amount"] == invoice["invoice"]["total_amount"] and details["subscription_period"] is None

    paid = sandbox.call("pay", {"user_id": ADA, "message_id": invoice["message_id"]})
    assert paid["ok"] and paid["pre_checkout_answered"] and paid["charge_id"]
    admin = sandbox.call("admin")
    assert [(p["charge_id"], p["status"], p["name"]) for p in admin["payments"]] == [(paid["charge_id"], "paid", "Ada")]
    assert [member["user_id"] for member in admin["members"]] == [ADA]

    link = sandbox.wait_for_bot_message("Your access is ready")["reply_markup"]["inline_keyboard"][0][0]["url"]
    assert sandbox.call("join", {"user_id": ADA, "invite_link": link}) == {"joined": True, "reason": None}
    members = {member["id"]: member["role"] for member in sandbox.call("world")["channel"]["members"]}
    assert members[ADA] == "member"
    assert sandbox.call("join", {"user_id": SANDBOX_ADMIN_ID, "invite_link": link})["joined"] is False  # one use


def test_the_page_shows_the_refusal_the_bot_gave(sandbox):
    sandbox.call("send", {"user_id": ADA, "text": "/plans"})
    plans = sandbox.wait_for_bot_message("Choose a plan")
    sandbox.call("press", {"user_id": ADA, "message_id": plans["message_id"], "callback_data": "buy:monthly"})
    offer = sandbox.wait_for_bot_message("tap below to subscribe")
    link = offer["reply_markup"]["inline_keyboard"][0][0]["url"]
    assert sandbox.call(f"invoice?link={link}")["subscription_period"] == 30 * 86400
    # Ada's subscription link, forwarded to the admin: Telegram asks the bot first, and the bot says no.
    refused = sandbox.call("pay", {"user_id": SANDBOX_ADMIN_ID, "link": link})
    assert refused["ok"] is False and refused["reason"] == "declined" and refused["pre_checkout_answered"]
    assert "made for someone else" in refused["error_message"]
    sandbox.call("press", {"user_id": ADA, "message_id": plans["message_id"], "callback_data": "buy:week"})
    invoice = wait_until(lambda: next((m for m in sandbox.chat() if "invoice" in m), None), message="the invoice")
    shown = sandbox.call("pay", {"user_id": SANDBOX_ADMIN_ID, "chat_id": ADA, "message_id": invoice["message_id"]})
    assert shown["reason"] == "declined" and "made for someone else" in shown["error_message"]
    assert sandbox.call("admin")["payments"] == []


def test_the_clock_runs_the_sweep_at_telegrams_time_and_redelivery_does_nothing(sandbox):
    sandbox.call("send", {"user_id": ADA, "text": "/start"})  # the bot may only write to those who started it
    sandbox.call("send", {"user_id": SANDBOX_ADMIN_ID, "text": f"/grant {ADA} 2"})
    sandbox.wait_for_bot_message("Granted", user_id=SANDBOX_ADMIN_ID)
    moved = sandbox.call("clock", {"days": 1})
    assert moved["sweep"]["reminded"] == [ADA] and moved["sweep"]["removed"] == []
    sandbox.wait_for_bot_message("Your membership ends on")
    later = sandbox.call("clock", {"days": 2})
    assert later["sweep"]["removed"] == [ADA] and later["now"] >= moved["now"] + 2 * 86400
    assert sandbox.call("world")["clock_offset"] >= 3 * 86400 - 5
    sandbox.call("clock", {"back_to_today": True})
    assert abs(sandbox.call("world")["clock_offset"]) <= 1

    latest = sandbox.call("admin")["updates"][0]["update_id"]
    outbox_before = len(sandbox.call("admin")["outbox"])
    again = sandbox.call("redeliver", {"update_id": latest})
    assert again["outcome"] == "acknowledged" and again["status"] == 200 and again["answer"] == ""
    assert len(sandbox.call("admin")["outbox"]) == outbox_before


@pytest.mark.parametrize("path, body, fragment", [
    ("send", {"user_id": ADA, "text": "  "}, "type a message"),
    ("send", {"user_id": "ada", "text": "/start"}, "user_id must be a whole number"),
    ("clock", {"days": 0}, "move the clock forward"),
    ("clock", {"days": "a week"}, "days must be a number"),
    ("users", {"first_name": ""}, "first name"),
    ("redeliver", {"update_id": 1}, "no update 1 was delivered"),
])
def test_bad_requests_are_one_clear_error(sandbox, path, body, fragment):
    assert fragment in sandbox.call(path, body, status=400)["error"]


def test_new_users_get_the_next_free_id(sandbox):
    made = sandbox.call("users", {"first_name": "Grace"})
    assert made["id"] == ADA + 1 and made["first_name"] == "Grace"
    assert sandbox.call("users", {"first_name": "Alan"})["id"] == ADA + 2


def test_an_unreachable_emulator_is_a_502_that_says_so(tmp_path):
    settings = load_settings({"DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3", "SANDBOX_TELEGRAM_PORT": "9"})
    response = create_app(settings).test_client().get("/sandbox/api/world")
    assert response.status_code == 502 and "did not answer" in response.json["error"]
