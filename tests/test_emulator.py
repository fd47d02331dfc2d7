"""The Bot API emulator's own contract, tested over real HTTP.

A tiny webhook receiver stands in for the bot: it records what Telegram (the
emulator) sends and answers as each test scripts it.  Nothing sleeps to
synchronise: the emulator's actions are synchronous, and waits use
conditions with deadlines.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest
import requests
import telebot
from telebot import apihelper, types

from botapi_emulator import BotApiEmulator, object_problems, updates
from botapi_emulator.delivery import SECRET_HEADER
from botapi_emulator.server import THREAD_NAME

TOKEN = "123456:TEST-token"
CHANNEL = -1001000000001
FAST_RETRIES = (0.01, 0.02, 0.04)

Responder = Callable[[dict], "tuple[int, Any]"]


class WebhookReceiver:
    """Stands in for the bot's webhook: records every request, answers as scripted.

    ``script`` holds (status, body) answers used first, in order; then
    ``responder(update)`` decides; by default the answer is an empty 200.
    """

    def __init__(self) -> None:
        self.received: list[tuple[dict, dict]] = []
        self.script: list[tuple[int, Any]] = []
        self.responder: Responder | None = None
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhook"

    def start(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def updates(self) -> list[dict]:
        with self._changed:
            return [body for _, body in self.received]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[dict, dict]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"webhook got {len(self.received)} of {count} requests")
                self._changed.wait(remaining)
            return list(self.received)

    def _answer(self, update: dict) -> tuple[int, Any]:
        with self._changed:
            if self.script:
                return self.script.pop(0)
        if self.responder is not None:
            return self.responder(update)
        return 200, None

    def _record(self, headers: dict, update: dict) -> None:
        with self._changed:
            self.received.append((headers, update))
            self._changed.notify_all()

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                update = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver._record(dict(self.headers), update)
                status, body = receiver._answer(update)
                encoded = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def telegram():
    with BotApiEmulator(TOKEN, CHANNEL, retry_delays=FAST_RETRIES, max_attempts=3, timeout=2.0) as emulator:
        yield emulator


@pytest.fixture
def receiver():
    webhook = WebhookReceiver().start()
    yield webhook
    webhook.stop()


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


# --- strictness -------------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("method", "changes", "fragment"),
    [
        ("createInvoiceLink", {"currency": "USD"}, "XTR"),
        ("createInvoiceLink", {"prices": [{"label": "a", "amount": 1}, {"label": "b", "amount": 2}]}, "one price"),
        ("createInvoiceLink", {"provider_token": "284685063:TEST:abc"}, "provider_token"),
        ("createInvoiceLink", {"payload": "x" * 129}, "INVOICE_PAYLOAD_INVALID"),
        ("createInvoiceLink", {"payload": ""}, "INVOICE_PAYLOAD_INVALID"),
        ("createInvoiceLink", {"subscription_period": 86400}, "SUBSCRIPTION_PERIOD_INVALID"),
        ("createInvoiceLink", {"subscription_period": 2592000, "prices": [{"label": "x", "amount": 10001}]},
         "SUBSCRIPTION_PRICE_INVALID"),
        ("sendInvoice", {"subscription_period": 2592000}, "createInvoiceLink"),
        ("sendInvoice", {"currency": "EUR"}, "XTR"),
    ],
)
def test_stars_rules_are_enforced(telegram, method, changes, fragment):
    telegram.user(7, has_started_bot=True)
    params = {**STARS_INVOICE, **changes}
    if method == "sendInvoice":
        params["chat_id"] = 7
    assert_bad_request(call(telegram, method, **params), fragment)


def test_valid_stars_invoices_are_accepted(telegram):
    telegram.user(7, has_started_bot=True)
    link = ok_result(telegram, "createInvoiceLink", **STARS_INVOICE, subscription_period=2592000)
    assert link.startswith("https://t.me/$")
    message = ok_result(telegram, "sendInvoice", chat_id=7, **STARS_INVOICE, provider_token="")
    assert message["invoice"]["total_amount"] == 250 and not object_problems("Message", message)


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


def test_other_send_methods_return_a_message_and_accept_uploads(telegram):
    telegram.user(7, has_started_bot=True)
    base = f"{telegram.url}/bot{TOKEN}"
    by_file_id = requests.post(f"{base}/sendPhoto", data={"chat_id": 7, "photo": "AgACAgIAAxk", "caption": "hi"}).json()
    assert by_file_id["ok"] and by_file_id["result"]["caption"] == "hi"
    uploaded = requests.post(f"{base}/sendDocument", data={"chat_id": 7}, files={"document": ("a.txt", b"xyz")})
    assert uploaded.json()["ok"] and telegram.calls("sendDocument")[0].params["document"].data == b"xyz"


def test_lenient_mode_answers_unknown_methods():
    with BotApiEmulator(TOKEN, CHANNEL, strict=False) as telegram:
        assert ok_result(telegram, "sendHologram", chat_id=1) is True


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


# --- webhook delivery ---------------------------------------------------------------------------


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


# --- payments -----------------------------------------------------------------------------------


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


def test_pay_invoice_after_ok_answer_delivers_successful_payment(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = answer_pre_checkout(ok=True)
    telegram.user(51, has_started_bot=True)
    invoice = ok_result(telegram, "sendInvoice", chat_id=51, **STARS_INVOICE)

    payment = telegram.pay_invoice(51, invoice)

    assert payment.ok and payment.delivery.delivered
    query, paid = receiver.updates()
    assert query["pre_checkout_query"]["invoice_payload"] == "plan:monthly"
    assert query["pre_checkout_query"]["total_amount"] == 250
    successful = paid["message"]["successful_payment"]
    assert successful["telegram_payment_charge_id"] == payment.charge_id and successful["currency"] == "XTR"
    assert "is_recurring" not in successful
    transactions = ok_result(telegram, "getStarTransactions")["transactions"]
    assert [t["id"] for t in transactions] == [payment.charge_id]
    assert transactions[0]["source"]["invoice_payload"] == "plan:monthly"


def test_pay_invoice_declined_makes_no_payment(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = answer_pre_checkout(ok=False, error_message="Plan sold out")
    link = ok_result(telegram, "createInvoiceLink", **STARS_INVOICE)

    payment = telegram.pay_invoice(telegram.user(52), link)

    assert not payment.ok and payment.reason == "declined" and payment.error_message == "Plan sold out"
    assert len(receiver.updates()) == 1 and telegram.star_transactions() == []


def test_pre_checkout_without_answer_times_out(receiver):
    with BotApiEmulator(TOKEN, CHANNEL, retry_delays=FAST_RETRIES, pre_checkout_timeout=0.3) as telegram:
        set_webhook(telegram, receiver)
        answer = telegram.pre_checkout(telegram.user(53), payload="plan:monthly", total_amount=250)
        assert not answer.answered
        late = call(telegram, "answerPreCheckoutQuery", pre_checkout_query_id=answer.query_id, ok=True)
        assert_bad_request(late, "query is too old")


def test_bot_may_answer_pre_checkout_with_its_own_call(telegram, receiver):
    set_webhook(telegram, receiver)

    def answer_over_http(update: dict) -> tuple[int, Any]:
        if "pre_checkout_query" in update:
            query_id = update["pre_checkout_query"]["id"]
            ok_result(telegram, "answerPreCheckoutQuery", pre_checkout_query_id=query_id, ok=True)
            assert_bad_request(call(telegram, "answerPreCheckoutQuery", pre_checkout_query_id=query_id, ok=True))
        return 200, None

    receiver.responder = answer_over_http
    answer = telegram.pre_checkout(telegram.user(54), payload="tampered", total_amount=1, currency="XTR")
    assert answer.answered and answer.ok


def test_subscription_payment_renewal_and_cancellation(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = answer_pre_checkout(ok=True)
    link = ok_result(telegram, "createInvoiceLink", **STARS_INVOICE, subscription_period=2592000)
    first = telegram.pay_invoice(telegram.user(61), link)
    assert first.successful_payment["is_recurring"] and first.successful_payment["is_first_recurring"]
    assert first.successful_payment["subscription_expiration_date"] >= telegram.now() + 2592000 - 5

    renewal = telegram.renew_subscription(61, first.charge_id)
    assert renewal.ok and renewal.charge_id != first.charge_id
    assert renewal.successful_payment["is_first_recurring"] is False
    assert (renewal.successful_payment["subscription_expiration_date"]
            == first.successful_payment["subscription_expiration_date"] + 2592000)
    assert telegram.star_transactions()[1]["source"]["subscription_period"] == 2592000

    ok_result(telegram, "editUserStarSubscription", user_id=61, telegram_payment_charge_id=first.charge_id,
              is_canceled=True)
    assert telegram.renew_subscription(61, first.charge_id).reason == "subscription_canceled"


def test_refunds_by_bot_and_by_telegram(telegram, receiver):
    set_webhook(telegram, receiver)
    bob = telegram.user(71)
    bot_refunded = telegram.record_transaction_without_update(bob, 250, "plan:monthly")
    ok_result(telegram, "refundStarPayment", user_id=71, telegram_payment_charge_id=bot_refunded.charge_id)
    again = call(telegram, "refundStarPayment", user_id=71, telegram_payment_charge_id=bot_refunded.charge_id)
    assert_bad_request(again, "CHARGE_ALREADY_REFUNDED")

    disputed = telegram.record_transaction_without_update(bob, 100, "plan:weekly")
    result = telegram.refund(bob, disputed.charge_id)
    assert result.update["message"]["refunded_payment"]["telegram_payment_charge_id"] == disputed.charge_id

    page = ok_result(telegram, "getStarTransactions", offset=0, limit=10)["transactions"]
    ids = [(transaction["id"], "receiver" in transaction) for transaction in page]
    assert ids == [(bot_refunded.charge_id, False), (bot_refunded.charge_id, True),
                   (disputed.charge_id, False), (disputed.charge_id, True)]
    assert_bad_request(call(telegram, "getStarTransactions", limit=101), "limit")


def test_replayed_successful_payment_gets_a_new_update_id(telegram, receiver):
    set_webhook(telegram, receiver)
    receiver.responder = answer_pre_checkout(ok=True)
    payment = telegram.pay_invoice(telegram.user(72), ok_result(telegram, "createInvoiceLink", **STARS_INVOICE))
    replay = telegram.replay_successful_payment(payment.charge_id)
    assert replay.update_id > payment.update["update_id"]
    assert replay.update["message"] == payment.update["message"]


# --- channel membership -----------------------------------------------------------------------


def test_member_limit_counts_current_members_and_reopens_after_leave(telegram, receiver):
    set_webhook(telegram, receiver, allowed_updates=["message", "chat_member"])
    link = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL, name="order 42", member_limit=1)
    alice, bob = telegram.user(81, first_name="Alice"), telegram.user(82, first_name="Bob")

    first = telegram.join_via_link(alice, link["invite_link"])
    assert first.joined
    update = first.update["chat_member"]
    assert update["invite_link"]["invite_link"] == link["invite_link"]
    assert update["new_chat_member"]["status"] == "member" and update["old_chat_member"]["status"] == "left"

    assert telegram.join_via_link(bob, link["invite_link"]).reason == "member_limit_reached"
    telegram.leave(alice)
    assert telegram.join_via_link(bob, link["invite_link"]).joined
    assert set(telegram.members()) >= {bob.id} and alice.id not in telegram.members()


def test_revoked_and_expired_links_refuse_joins(telegram, receiver):
    set_webhook(telegram, receiver)
    revoked = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL)
    result = ok_result(telegram, "revokeChatInviteLink", chat_id=CHANNEL, invite_link=revoked["invite_link"])
    assert result["is_revoked"] is True
    assert telegram.join_via_link(telegram.user(91), revoked["invite_link"]).reason == "link_revoked"

    expiring = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL, expire_date=telegram.now() + 60)
    telegram.advance_time(61)
    assert telegram.join_via_link(telegram.user(91), expiring["invite_link"]).reason == "link_expired"


def test_invite_link_option_rules(telegram):
    assert_bad_request(call(telegram, "createChatInviteLink", chat_id=CHANNEL, name="n" * 33), "name")
    assert_bad_request(call(telegram, "createChatInviteLink", chat_id=CHANNEL, member_limit=0), "USAGE_LIMIT_INVALID")
    both = call(telegram, "createChatInviteLink", chat_id=CHANNEL, member_limit=1, creates_join_request=True)
    assert_bad_request(both, "member limit")


def test_ban_and_unban(telegram, receiver):
    set_webhook(telegram, receiver, allowed_updates=["chat_member"])
    link = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL)["invite_link"]
    carol = telegram.user(101)
    telegram.join_via_link(carol, link)

    ok_result(telegram, "unbanChatMember", chat_id=CHANNEL, user_id=101, only_if_banned=True)
    assert telegram.member_status(carol) == "member"

    ok_result(telegram, "banChatMember", chat_id=CHANNEL, user_id=101)
    assert ok_result(telegram, "getChatMember", chat_id=CHANNEL, user_id=101)["status"] == "kicked"
    assert telegram.join_via_link(carol, link).reason == "banned"
    ok_result(telegram, "unbanChatMember", chat_id=CHANNEL, user_id=101, only_if_banned=True)
    assert telegram.join_via_link(carol, link).joined

    ok_result(telegram, "unbanChatMember", chat_id=CHANNEL, user_id=101)  # plain unban removes a member
    assert telegram.member_status(carol) == "left"
    assert_bad_request(call(telegram, "getChatMember", chat_id=CHANNEL, user_id=999999), "user not found")
    assert_bad_request(call(telegram, "banChatMember", chat_id=CHANNEL, user_id=999999), "PARTICIPANT_ID_INVALID")

    # The bot's own bans and unbans come back as chat_member updates (delivered in the background).
    changes = [update["chat_member"] for _, update in receiver.wait_for(5)]
    transitions = sorted((c["old_chat_member"]["status"], c["new_chat_member"]["status"]) for c in changes)
    assert transitions == sorted([("left", "member"), ("member", "kicked"), ("kicked", "left"),
                                  ("left", "member"), ("member", "left")])
    ban = next(c for c in changes if c["new_chat_member"]["status"] == "kicked")
    assert ban["from"]["id"] == telegram.bot_user.id


def test_join_request_link_needs_approval(telegram, receiver):
    set_webhook(telegram, receiver, allowed_updates=["chat_join_request", "chat_member"])
    link = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL, creates_join_request=True)
    result = telegram.join_via_link(telegram.user(102), link["invite_link"])
    assert not result.joined and result.reason == "join_request_sent"
    assert result.update["chat_join_request"]["invite_link"]["pending_join_request_count"] == 1
    ok_result(telegram, "approveChatJoinRequest", chat_id=CHANNEL, user_id=102)
    approved = receiver.wait_for(2)[1][1]["chat_member"]
    assert approved["via_join_request"] is True and approved["invite_link"]["invite_link"] == link["invite_link"]
    assert telegram.member_status(102) == "member"
    assert_bad_request(call(telegram, "approveChatJoinRequest", chat_id=CHANNEL, user_id=102), "HIDE_REQUESTER_MISSING")


# --- faults -------------------------------------------------------------------------------------


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


# --- builders -----------------------------------------------------------------------------------


def all_builder_outputs() -> dict[str, dict]:
    alice = updates.user_json(1001, "Alice", username="alice")
    bot = updates.user_json(123456, "Bot", username="membership_test_bot", is_bot=True)
    channel = updates.channel_chat_json(CHANNEL, "Private Channel")
    link = {"invite_link": "https://t.me/+abc", "creator": bot, "creates_join_request": False,
            "is_primary": False, "is_revoked": False, "member_limit": 1}
    sent = {"message_id": 5, "from": bot, "chat": updates.private_chat_json(alice), "date": 1, "text": "Pick",
            "reply_markup": {"inline_keyboard": [[{"text": "Buy", "callback_data": "buy"}]]}}
    payment = updates.successful_payment_json("stx1", 250, "plan", "p1", subscription_expiration_date=9,
                                              is_first_recurring=True)
    return {
        "text": updates.text_message_update(1, 1, 1, alice, "/start ref_42"),
        "callback_query": updates.callback_query_update(2, "77", alice, sent, "buy"),
        "pre_checkout_query": updates.pre_checkout_query_update(3, "88", alice, "XTR", 250, "plan"),
        "successful_payment": updates.successful_payment_update(4, 6, 1, alice, payment),
        "refunded_payment": updates.refunded_payment_update(5, 7, 1, alice, {
            "currency": "XTR", "total_amount": 250, "invoice_payload": "plan", "telegram_payment_charge_id": "stx1"}),
        "chat_member_join": updates.chat_member_update(
            6, channel, alice, 1, updates.chat_member_json("left", alice), updates.chat_member_json("member", alice),
            link),
        "chat_member_ban": updates.chat_member_update(
            7, channel, bot, 1, updates.chat_member_json("member", alice), updates.chat_member_json("kicked", alice)),
        "my_chat_member": updates.my_chat_member_update(
            8, updates.private_chat_json(alice), alice, 1,
            updates.chat_member_json("member", bot), updates.chat_member_json("kicked", bot)),
        "my_chat_member_admin": updates.my_chat_member_update(
            9, channel, alice, 1, updates.chat_member_json("left", bot),
            updates.chat_member_json("administrator", bot)),
        "chat_join_request": updates.chat_join_request_update(10, channel, alice, 1, link),
        "subscription": updates.subscription_update(11, alice, "plan", "failed"),
    }


@pytest.mark.parametrize("name", sorted(all_builder_outputs()))
def test_builder_output_is_valid_and_parses_with_telebot(name):
    update = all_builder_outputs()[name]
    assert object_problems("Update", update) == []
    parsed = types.Update.de_json(json.dumps(update))
    assert parsed.update_id == update["update_id"]
    kind = updates.update_kind(update)
    assert getattr(parsed, kind) is not None


def test_emulator_produced_updates_are_valid(telegram, receiver):
    set_webhook(telegram, receiver, allowed_updates=["message", "callback_query", "pre_checkout_query", "chat_member"])
    receiver.responder = answer_pre_checkout(ok=True)
    dave = telegram.user(111, first_name="Dave", username="dave")
    telegram.send_message(dave, "/start")
    menu = ok_result(telegram, "sendMessage", chat_id=111, text="Plans",
                     reply_markup={"inline_keyboard": [[{"text": "Buy", "callback_data": "buy"}]]})
    telegram.press_button(dave, menu, "buy")
    payment = telegram.pay_invoice(dave, ok_result(telegram, "createInvoiceLink", **STARS_INVOICE))
    telegram.refund(dave, payment.charge_id)
    telegram.join_via_link(dave, ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL)["invite_link"])
    for update in receiver.updates():
        assert object_problems("Update", update) == [], update
        types.Update.de_json(json.dumps(update))
    assert len(receiver.updates()) == 6


# --- clients and the control surface -----------------------------------------------------------


def test_telebot_client_works_against_the_emulator(telegram):
    previous = apihelper.API_URL
    apihelper.API_URL = telegram.url + "/bot{0}/{1}"
    try:
        bot = telebot.TeleBot(TOKEN, threaded=False)
        telegram.user(7, has_started_bot=True)
        assert bot.get_me().username == "membership_test_bot"
        markup = types.InlineKeyboardMarkup([[types.InlineKeyboardButton("Buy", callback_data="buy")]])
        assert bot.send_message(7, "Plans", reply_markup=markup).reply_markup.keyboard[0][0].callback_data == "buy"
        assert bot.set_webhook("http://127.0.0.1:9/webhook", allowed_updates=["message", "chat_member"])
        assert telegram.webhook_info()["allowed_updates"] == ["message", "chat_member"]
        link = bot.create_chat_invite_link(CHANNEL, name="order 1", member_limit=1)
        assert link.member_limit == 1
        prices = [types.LabeledPrice("Monthly", 250)]
        invoice_link = bot.create_invoice_link("Monthly", "30 days", "plan:m", None, "XTR", prices,
                                               subscription_period=2592000)
        assert invoice_link.startswith("https://t.me/$")
        assert bot.send_invoice(7, "Monthly", "30 days", "plan:m", None, "XTR", prices).invoice.total_amount == 250
    finally:
        apihelper.API_URL = previous


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
