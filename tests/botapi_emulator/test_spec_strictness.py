"""The emulator is as strict as Telegram about requests, and its results are valid per the spec.

Wrong tokens, unknown methods, missing or mistyped parameters are refused
with Telegram's own errors; every way a client may pass parameters (query
string, form, multipart, JSON) gives the same result.
"""

from __future__ import annotations

import json

import requests

from botapi_emulator import BotApiEmulator, object_problems
from tests.botapi_emulator.bot_calls import CHANNEL, TOKEN, assert_bad_request, call, ok_result


def test_wrong_token_is_401(telegram):
    response = requests.post(f"{telegram.url}/bot999:wrong/getMe", timeout=5)
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_unknown_method_is_404_and_names_are_case_insensitive(telegram):
    response = call(telegram, "sendTelepathy", chat_id=1)
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert call(telegram, "GETME").json()["result"]["is_bot"] is True


def test_missing_required_param_and_wrong_type_are_400(telegram):
    assert_bad_request(call(telegram, "sendMessage", text="hi"), "chat_id")
    assert_bad_request(call(telegram, "deleteMessage", chat_id=CHANNEL, message_id="abc"), "message_id")
    assert_bad_request(call(telegram, "createChatInviteLink", chat_id={"id": CHANNEL}), "chat_id")
    markup_without_keyboard = {"keyboard_rows": []}
    telegram.user(7, has_started_bot=True)
    assert_bad_request(call(telegram, "sendMessage", chat_id=7, text="x", reply_markup=markup_without_keyboard))


def test_unknown_extra_params_are_ignored(telegram):
    telegram.user(7, has_started_bot=True)
    message = ok_result(telegram, "sendMessage", chat_id=7, text="hi", no_such_param=True)
    assert message["text"] == "hi"


def test_query_form_multipart_and_json_params_give_the_same_result(telegram):
    telegram.user(7, has_started_bot=True)
    markup = {"inline_keyboard": [[{"text": "Buy", "callback_data": "buy:monthly"}]]}
    text_params = {"chat_id": "7", "text": "Choose a plan", "reply_markup": json.dumps(markup)}
    base = f"{telegram.url}/bot{TOKEN}/sendMessage"
    responses = [
        requests.get(base, params=text_params, timeout=5),
        requests.post(base, params=text_params, timeout=5),  # telebot's style: POST with a query string
        requests.post(base, data=text_params, timeout=5),
        requests.post(base, files={name: (None, value) for name, value in text_params.items()}, timeout=5),
        requests.post(base, json={"chat_id": 7, "text": "Choose a plan", "reply_markup": markup}, timeout=5),
    ]
    results = [response.json()["result"] for response in responses]
    comparable = [{key: value for key, value in result.items() if key not in ("message_id", "date")}
                  for result in results]
    assert all(entry == comparable[0] for entry in comparable)
    assert comparable[0]["reply_markup"] == markup
    assert [result["message_id"] for result in results] == [1, 2, 3, 4, 5]


def test_lenient_mode_answers_unknown_methods():
    with BotApiEmulator(TOKEN, CHANNEL, strict=False) as telegram:
        assert ok_result(telegram, "sendHologram", chat_id=1) is True


def test_results_are_valid_objects_per_spec(telegram):
    alice = telegram.user(11, first_name="Alice", has_started_bot=True)
    checks = {
        "User": ok_result(telegram, "getMe"),
        "Message": ok_result(telegram, "sendMessage", chat_id=alice.id, text="hello"),
        "ChatInviteLink": ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL, member_limit=1),
        "ChatFullInfo": ok_result(telegram, "getChat", chat_id=CHANNEL),
        "ChatMember": ok_result(telegram, "getChatMember", chat_id=CHANNEL, user_id=alice.id),
        "StarTransactions": ok_result(telegram, "getStarTransactions"),
    }
    for type_name, value in checks.items():
        assert object_problems(type_name, value) == [], (type_name, value)
