"""Bad input never gets a 500 or writes anything; floods are throttled; bots' pace is kept."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membership import invoice_payload
from models.payment import Payment
from models.processed_update import ProcessedUpdate
from models.user import User
from settings import settings_of
from settings.telegram import SECRET_HEADER
from stack_harness.bot_env import WEBHOOK_SECRET, make_env
from tests.helpers import build_app, command, count, post_update
from worker_process import lifecycle

REPO = Path(__file__).resolve().parents[2]
KINDS = ["message", "callback_query", "chat_member", "pre_checkout_query", "purchased_paid_media",
         "edited_message", "made_up_kind"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
updates = st.fixed_dictionaries(
    {"update_id": st.one_of(st.integers(min_value=-5, max_value=2**64), st.text(max_size=5), st.none())},
    optional={kind: json_values for kind in KINDS},
)
bodies = st.one_of(
    updates.map(lambda update: json.dumps(update).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth + b"]" * depth),
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", ""])
secrets = st.sampled_from([WEBHOOK_SECRET, WEBHOOK_SECRET, "", "wrong", WEBHOOK_SECRET + "x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=content_types, secret=secrets)
def test_fuzzed_webhook_bodies_never_500_and_rejected_ones_write_nothing(app, client, body, content_type, secret):
    before = (count(app, ProcessedUpdate), count(app, User))
    response = client.post("/webhook", data=body, content_type=content_type, headers={SECRET_HEADER: secret})
    assert response.status_code in (200, 400, 401, 413, 415), response.data[:300]
    if response.status_code != 200:
        assert (count(app, ProcessedUpdate), count(app, User)) == before


def test_after_the_fuzz_a_valid_update_is_handled(app, client):
    for body in (b"\xff" * 10, b"[" * 50000, json.dumps({"update_id": 1, "message": []}).encode(),
                 json.dumps({"update_id": 2, "message": {"message_id": "x"}}).encode()):
        assert client.post("/webhook", data=body, content_type="application/json",
                           headers={SECRET_HEADER: WEBHOOK_SECRET}).status_code == 400
    oversized = client.post("/webhook", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                            content_type="application/json", headers={SECRET_HEADER: WEBHOOK_SECRET})
    assert oversized.status_code == 413
    assert post_update(client, command(3, 42, "/start")).json["method"] == "sendMessage"


@pytest.mark.parametrize("text", ["/grant abc -5", "/grant 1 99999999", "/refund", "/revoke -1",
                                  "x" * 10000, "/start " + "ü" * 3000, "🙂" * 500, "/status@other_bot extra"])
def test_odd_commands_and_texts_get_polite_answers(app, client, text):
    response = post_update(client, command(abs(hash(text)) % 10**9, 4242, text))
    assert response.status_code == 200
    assert response.json["method"] == "sendMessage" and response.json["text"]


def test_callback_data_not_made_by_us_is_answered_politely(app, client):
    update = {"update_id": 77, "callback_query": {
        "id": "q1", "from": {"id": 4243, "is_bot": False, "first_name": "M"}, "chat_instance": "c",
        "data": "'; DROP TABLE users; --"}}
    response = post_update(client, update)
    assert response.json["method"] == "answerCallbackQuery" and "no longer valid" in response.json["text"]
    assert count(app, User, User.id == 4243) == 1


def test_a_flooding_user_is_told_once_and_payments_still_go_through(pg_database_url, emulator):
    env = make_env(pg_database_url, emulator.url, FLOOD_LIMIT_PER_MINUTE="5")
    # Two apps on one database stand for two workers (or replicas).
    first, second = build_app(env), build_app(env)
    try:
        clients = [first.test_client(), second.test_client()]
        answers = [post_update(clients[n % 2], command(500 + n, 4300, "/help")) for n in range(9)]
        texts = [a.json["text"] if a.data else None for a in answers]
        assert all(a.status_code == 200 for a in answers)
        assert all(t and t.startswith("This bot sells") for t in texts[:5])
        assert texts[5].startswith("You are sending messages too fast") and texts[6:] == [None, None, None]
        payload = invoice_payload.sign(settings_of(first).payload_secret, settings_of(first).plan("month"), 4300)
        paid = {"update_id": 600, "message": {
            "message_id": 9, "date": int(time.time()), "chat": {"id": 4300, "type": "private"},
            "from": {"id": 4300, "is_bot": False, "first_name": "F"},
            "successful_payment": {"currency": "XTR", "total_amount": 250, "invoice_payload": payload,
                                   "telegram_payment_charge_id": "flood-charge", "provider_payment_charge_id": ""}}}
        assert post_update(clients[0], paid).status_code == 200
        assert count(first, Payment, Payment.charge_id == "flood-charge") == 1
    finally:
        lifecycle.shutdown(first)
        lifecycle.shutdown(second)


def test_outgoing_messages_keep_telegrams_pace(pg_database_url, emulator):
    app = build_app(make_env(pg_database_url, emulator.url, OUTBOX_CHAT_INTERVAL_MS="400",
                             OUTBOX_MAX_PER_SECOND="10", WEB_CONCURRENCY="1"), outbox_poll_seconds=0.05)
    try:
        from tests.helpers import enqueue
        enqueue(app, *[("sendMessage", {"chat_id": 4400, "text": f"n{n}"}, 4400) for n in range(3)])
        same_chat = emulator.wait_for_calls("sendMessage", 3, timeout=15)
        gaps = [b.time - a.time for a, b in zip(same_chat, same_chat[1:])]
        assert min(gaps) >= 0.4, gaps
        since = emulator.next_call_index
        enqueue(app, *[("sendMessage", {"chat_id": 4500 + n, "text": "hi"}, 4500 + n) for n in range(20)])
        burst = emulator.wait_for_calls("sendMessage", 20, since=since, timeout=15)
        # 10 a second with a burst of 10: twenty calls need at least a second.
        assert burst[-1].time - burst[0].time >= 0.9
    finally:
        lifecycle.shutdown(app)


def test_no_eval_pickle_or_sql_built_from_strings_in_server_code():
    sources = [p for p in REPO.glob("*.py")] + list((REPO / "routes").glob("*.py")) + \
        list((REPO / "models").glob("*.py"))
    for path in sources:
        text = path.read_text()
        assert not re.search(r"\b(eval|exec)\(|\bpickle\b|\bmarshal\b", text), path
        assert not re.search(r"(execute|text)\(\s*f[\"']", text), f"{path}: SQL built with an f-string"
