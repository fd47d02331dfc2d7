"""How the emulator delivers updates to the bot's webhook: secret header, retries, filters, connections.

Nothing sleeps to synchronise: the emulator's actions are synchronous, and
waits use conditions with deadlines.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from botapi_emulator import BotApiEmulator, updates
from settings.telegram import SECRET_HEADER
from tests.botapi_emulator.bot_calls import CHANNEL, TOKEN, ok_result, set_webhook


def test_delivery_sends_the_secret_header(telegram, receiver):
    set_webhook(telegram, receiver, secret_token="my-secret")
    result = telegram.send_message(telegram.user(21, first_name="Ann"), "/start plan_monthly")
    assert result.delivered and result.delivery.attempts == 1
    headers, update = receiver.wait_for(1)[0]
    assert headers[SECRET_HEADER] == "my-secret"
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]


def test_delivery_retries_on_500_with_the_same_update_id(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.script = [(500, {"error": "db down"})]
    result = telegram.send_message(21, "hello")
    assert result.delivery.outcome == "acknowledged" and result.delivery.attempts == 2
    first, second = receiver.updates()
    assert first["update_id"] == second["update_id"] == result.update_id
    info = ok_result(telegram, "getWebhookInfo")
    assert "500" in info["last_error_message"] and info["last_error_date"] > 0


def test_delivery_gives_up_after_max_attempts(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = lambda update: (502, None)
    result = telegram.send_message(21, "hello")
    assert result.delivery.outcome == "gave_up" and result.delivery.attempts == 3 and len(receiver.updates()) == 3


def test_update_ids_grow_and_redeliver_keeps_the_id(telegram, receiver):
    set_webhook(telegram, receiver)
    first = telegram.send_message(21, "one")
    second = telegram.send_message(21, "two")
    assert second.update_id > first.update_id
    again = telegram.redeliver(first.update_id)
    assert again.delivered and receiver.updates()[-1] == first.update


def test_allowed_updates_filter_chat_member_unless_listed(telegram, receiver):
    set_webhook(telegram, receiver, allowed_updates=[])
    link = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL)
    joined = telegram.join_via_link(telegram.user(31), link["invite_link"])
    assert joined.joined and joined.delivery.outcome == "filtered" and receiver.updates() == []
    set_webhook(telegram, receiver, allowed_updates=["message", "chat_member"])
    joined = telegram.join_via_link(telegram.user(32), link["invite_link"])
    assert joined.delivery.delivered and "chat_member" in receiver.updates()[0]


def test_deliveries_respect_max_connections(telegram, receiver):
    set_webhook(telegram, receiver, max_connections=2)
    release = threading.Event()
    in_flight, most_in_flight, lock = [0], [0], threading.Lock()

    def slow_bot(update: dict) -> tuple[int, Any]:
        with lock:
            in_flight[0] += 1
            most_in_flight[0] = max(most_in_flight[0], in_flight[0])
        release.wait(5)
        with lock:
            in_flight[0] -= 1
        return 200, None

    receiver.responder = slow_bot
    futures = [telegram.deliver_async({"message": updates.text_message(1, 1, updates.user_json(5), "hi")})
               for _ in range(6)]
    receiver.wait_for(2)
    release.set()
    assert all(future.result(timeout=5).delivered for future in futures)
    assert most_in_flight[0] == 2


def test_drop_pending_updates_stops_retries(receiver):
    with BotApiEmulator(TOKEN, CHANNEL, retry_delays=(0.2,), max_attempts=50) as telegram:
        set_webhook(telegram, receiver)
        receiver.responder = lambda update: (500, None)
        future = telegram.deliver_async({"message": updates.text_message(1, 1, updates.user_json(5), "hi")})
        receiver.wait_for(1)
        assert ok_result(telegram, "getWebhookInfo")["pending_update_count"] == 1
        set_webhook(telegram, receiver, drop_pending_updates=True)
        assert future.result(timeout=5).outcome == "dropped"
        assert ok_result(telegram, "getWebhookInfo")["pending_update_count"] == 0


def test_method_in_webhook_response_is_executed(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = lambda update: (200, {
        "method": "sendMessage", "chat_id": update["message"]["chat"]["id"], "text": "Welcome!",
    })
    result = telegram.send_message(41, "/start")
    assert result.delivery.response_call.ok
    sent = telegram.wait_for_call("sendMessage", lambda c: c.via_webhook_response)
    assert sent.result["text"] == "Welcome!"
    assert [message.get("text") for message in telegram.messages(41)] == ["/start", "Welcome!"]


def test_failing_method_in_webhook_response_is_not_reported(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = lambda update: (200, {"method": "sendMessage", "chat_id": -42, "text": "lost"})
    result = telegram.send_message(41, "/start")
    assert result.delivered and result.delivery.response_call.ok is False
    assert len(receiver.updates()) == 1  # no retry, no error to anyone


def test_raw_updates_make_their_users_and_queries_known(telegram, receiver):
    set_webhook(telegram, receiver)
    stranger = updates.user_json(777, "Stranger")
    telegram.deliver(updates.text_message_update(9001, 1, 1, stranger, "/start"))
    assert ok_result(telegram, "sendMessage", chat_id=777, text="Hello")["chat"]["id"] == 777
    message = {"message_id": 2, "chat": updates.private_chat_json(stranger), "date": 1, "text": "Pick"}
    telegram.deliver(updates.callback_query_update(9002, "q-1", stranger, message, "buy"))
    assert ok_result(telegram, "answerCallbackQuery", callback_query_id="q-1") is True


def test_actions_need_a_webhook(telegram):
    from botapi_emulator import NoWebhookError

    with pytest.raises(NoWebhookError, match="setWebhook"):
        telegram.send_message(1, "hi")
