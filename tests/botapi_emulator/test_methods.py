"""Bot API methods behave as Telegram's: sending, formatting, editing, private chats, channel posts, setWebhook."""

from __future__ import annotations

import requests

from botapi_emulator import object_problems
from tests.botapi_emulator.bot_calls import CHANNEL, TOKEN, assert_bad_request, call, ok_result


def test_other_send_methods_return_a_message_and_accept_uploads(telegram):
    telegram.user(7, has_started_bot=True)
    base = f"{telegram.url}/bot{TOKEN}"
    by_file_id = requests.post(f"{base}/sendPhoto", data={"chat_id": 7, "photo": "AgACAgIAAxk", "caption": "hi"}).json()
    assert by_file_id["ok"] and by_file_id["result"]["caption"] == "hi"
    uploaded = requests.post(f"{base}/sendDocument", data={"chat_id": 7}, files={"document": ("a.txt", b"xyz")})
    assert uploaded.json()["ok"] and telegram.calls("sendDocument")[0].params["document"].data == b"xyz"


def test_html_is_parsed_into_entities_and_bad_html_refused(telegram):
    telegram.user(7, has_started_bot=True)
    message = ok_result(telegram, "sendMessage", chat_id=7, text="<b>Paid</b> &amp; done", parse_mode="HTML")
    assert message["text"] == "Paid & done"
    assert message["entities"] == [{"type": "bold", "offset": 0, "length": 4}]
    bad_html = call(telegram, "sendMessage", chat_id=7, text="<div>x</div>", parse_mode="HTML")
    assert_bad_request(bad_html, "can't parse entities")


def test_private_chats_need_a_started_unblocked_user(telegram):
    telegram.user(8)
    assert call(telegram, "sendMessage", chat_id=8, text="hi").status_code == 403
    telegram.user(8, has_started_bot=True, has_blocked_bot=True)
    response = call(telegram, "sendMessage", chat_id=8, text="hi")
    assert response.status_code == 403 and response.json()["description"] == "Forbidden: bot was blocked by the user"


def test_channel_posts_have_sender_chat_and_can_be_edited(telegram):
    post = ok_result(telegram, "sendMessage", chat_id=CHANNEL, text="New episode")
    assert "from" not in post and post["sender_chat"]["id"] == CHANNEL
    assert ok_result(telegram, "editMessageText", chat_id=CHANNEL, message_id=post["message_id"], text="Edited")


def test_edit_message_not_modified_is_refused(telegram):
    telegram.user(7, has_started_bot=True)
    message = ok_result(telegram, "sendMessage", chat_id=7, text="Plans")
    edited = ok_result(telegram, "editMessageText", chat_id=7, message_id=message["message_id"], text="Plans v2")
    assert edited["text"] == "Plans v2" and "edit_date" in edited
    again = call(telegram, "editMessageText", chat_id=7, message_id=message["message_id"], text="Plans v2")
    assert_bad_request(again, "message is not modified")


def test_set_webhook_validates_and_reports(telegram, receiver):
    assert_bad_request(call(telegram, "setWebhook", url=receiver.url, secret_token="bad token!"), "secret token")
    assert_bad_request(call(telegram, "setWebhook", url=receiver.url, max_connections=101), "max_connections")
    response = call(telegram, "setWebhook", url=receiver.url, secret_token="s3cret_-", allowed_updates=["message"])
    assert response.json() == {"ok": True, "result": True, "description": "Webhook was set"}
    info = ok_result(telegram, "getWebhookInfo")
    assert info["url"] == receiver.url and info["allowed_updates"] == ["message"] and info["pending_update_count"] == 0
    assert not object_problems("WebhookInfo", info)
