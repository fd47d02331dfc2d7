"""A strict Telegram Bot API emulator: a real HTTP server that behaves like Telegram.

The bot under test points ``TELEGRAM_API_URL`` at ``emulator.url`` and calls
``POST {url}/bot{token}/{method}`` as it would call Telegram.  The emulator
answers in Telegram's shape, refuses what Telegram refuses (per the Bot API
10.2 schema in ``botapi_methods.json`` and Telegram's rules for Stars
payments and invite links), keeps the state those methods act on, and
delivers updates to the bot's webhook as Telegram does (secret header,
``allowed_updates``, retries with the same ``update_id``, a method in the
webhook response).

Python API (tests)::

    with BotApiEmulator(token="123456:TEST-token", channel_id=-1001000000001) as telegram:
        start_bot(TELEGRAM_API_URL=telegram.url)
        telegram.wait_for_call("setWebhook")
        alice = telegram.user(1001, first_name="Alice")
        telegram.send_message(alice, "/start")
        invoice = telegram.wait_for_call("sendInvoice").result
        payment = telegram.pay_invoice(alice, invoice)     # pre-checkout, then successful_payment
        link = telegram.wait_for_call("createChatInviteLink").result
        telegram.join_via_link(alice, link)                # chat_member with invite_link

Run standalone (sandbox, benchmark)::

    python -m botapi_emulator --port 8081 --token 123456:TEST-token [--channel-id -1001000000001]

HTTP control surface (JSON; GET endpoints take the query string, POST ones a
JSON object; answers are ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}`` with 400/404/408/409)::

    GET  /control/info                                    url, token, channel_id, bot, now
    POST /control/user            {user_id, first_name?, username?, has_started_bot?, has_blocked_bot?}
    POST /control/deliver         {update}                -> DeliveryResult
    POST /control/redeliver       {update_id}             -> DeliveryResult
    POST /control/send_message    {user_id, text}         -> ActionResult
    POST /control/press_button    {user_id, chat_id, message_id, callback_data}
    POST /control/pay_invoice     {user_id, invoice: link | {chat_id, message_id}} -> PaymentResult
    POST /control/pre_checkout    {user_id, payload, total_amount, currency?}      -> PreCheckoutAnswer
    POST /control/renew_subscription         {user_id, charge_id}                 -> PaymentResult
    POST /control/replay_successful_payment  {charge_id, update_id?}              -> ActionResult
    POST /control/refund          {user_id, charge_id}    -> ActionResult
    POST /control/update_subscription        {user_id, charge_id, state}          -> ActionResult
    POST /control/record_transaction         {user_id, amount, payload, subscription?} -> charge_id
    POST /control/join            {user_id, invite_link}  -> JoinResult
    POST /control/leave           {user_id, chat_id?}     -> ActionResult
    POST /control/block_bot       {user_id}               (and /control/unblock_bot)
    POST /control/inject          {method, kind: 429|5xx|latency|hang, times?, retry_after?, status?, delay?}
    POST /control/latency         {method: name|"*", seconds}
    POST /control/clear_faults    {}
    POST /control/release_hangs   {}
    POST /control/advance_time    {seconds}               -> Telegram's new "now"
    GET  /control/calls?method=&since=                    -> [Call]
    GET  /control/wait?method=&since=&timeout=&count=     -> [Call] (408 on timeout)
    GET  /control/messages?chat_id=  /control/members?chat_id=  /control/invite_links?chat_id=
    GET  /control/transactions  /control/payments  /control/webhook
    GET  /control/users  /control/invoices

Deliberate differences from Telegram: webhooks may be plain HTTP on any port;
updates are only delivered by webhook (getUpdates answers ``[]``, or 409
while a webhook is set); Markdown texts are not checked (HTML is); known
methods without a model answer ``true`` (send* methods a plain Message).
"""

from . import updates
from .action_results import ActionResult, JoinResult, PaymentResult, PreCheckoutAnswer
from .delivery import DeliveryResult, NoWebhookError
from .emulator import DEFAULT_CHANNEL_ID, DEFAULT_TOKEN, BotApiEmulator
from .model import User
from .recorder import Call
from .spec import object_problems
from .updates import (
    callback_query_update,
    channel_chat_json,
    chat_join_request_update,
    chat_member_json,
    chat_member_update,
    message_update,
    my_chat_member_update,
    pre_checkout_query_update,
    private_chat_json,
    refunded_payment_message,
    refunded_payment_update,
    subscription_update,
    successful_payment_json,
    successful_payment_message,
    successful_payment_update,
    text_message,
    text_message_update,
    user_json,
)

__all__ = [
    "ActionResult", "BotApiEmulator", "Call", "DEFAULT_CHANNEL_ID", "DEFAULT_TOKEN", "DeliveryResult",
    "JoinResult", "NoWebhookError", "PaymentResult", "PreCheckoutAnswer", "User", "object_problems", "updates",
    "callback_query_update", "channel_chat_json", "chat_join_request_update", "chat_member_json",
    "chat_member_update", "message_update", "my_chat_member_update", "pre_checkout_query_update",
    "private_chat_json", "refunded_payment_message", "refunded_payment_update", "subscription_update",
    "successful_payment_json", "successful_payment_message", "successful_payment_update", "text_message",
    "text_message_update", "user_json",
]
