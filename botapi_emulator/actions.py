"""What users, and Telegram itself, do to the bot: each action changes Telegram's state,
builds the Update Telegram would send and delivers it to the bot's webhook.

Why actions and not raw updates: a raw update can say anything, but Telegram
only sends updates that follow from real events.  A payment exists only
after the bot approved the pre-checkout query; a join through an invite link
only when the link allows it.  Tests that go through actions therefore test
the bot against what can actually happen; ``deliver`` remains for the rest.

Every action checks first that the bot has a webhook (``NoWebhookError``),
so a test mistake never leaves a half-applied event behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Union

from .delivery import DeliveryResult, NoWebhookError, WebhookDelivery
from .membership import change_status, join_refusal
from .recorder import Call
from .model import Invoice, Payment, PendingQuery, User
from .state import TelegramState
from .updates import (
    callback_query_update, chat_join_request_update, chat_member_json, message_update,
    my_chat_member_update, pre_checkout_query_update, refunded_payment_message, subscription_update,
    successful_payment_message, text_message,
)

UserRef = Union[User, int]
JOIN_REQUEST_SENT = "join_request_sent"


@dataclass
class ActionResult:
    """The update an action produced and what became of its delivery."""

    update: dict
    delivery: DeliveryResult
    query_id: str | None = None  # for callback queries

    @property
    def update_id(self) -> int:
        return self.update["update_id"]

    @property
    def delivered(self) -> bool:
        return self.delivery.delivered

    def to_json(self) -> dict:
        return {"update": self.update, "delivery": self.delivery.to_json(), "query_id": self.query_id}


@dataclass
class PreCheckoutAnswer:
    """The bot's answer to a pre-checkout query (``answered`` False: none in time)."""

    query_id: str
    answered: bool
    ok: bool | None
    error_message: str | None
    update: dict
    delivery: DeliveryResult

    def to_json(self) -> dict:
        return {
            "query_id": self.query_id, "answered": self.answered, "ok": self.ok,
            "error_message": self.error_message, "update": self.update, "delivery": self.delivery.to_json(),
        }


@dataclass
class PaymentResult:
    """Outcome of a payment attempt.

    ``ok`` False comes with ``reason``: ``declined`` (the bot answered
    ok=False, see ``error_message``), ``no_answer`` (no answer within the
    pre-checkout timeout) or ``subscription_canceled`` (a renewal the bot
    had cancelled).
    """

    ok: bool
    reason: str | None = None
    error_message: str | None = None
    pre_checkout: PreCheckoutAnswer | None = None
    charge_id: str | None = None
    successful_payment: dict | None = None
    update: dict | None = None
    delivery: DeliveryResult | None = None

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "reason": self.reason, "error_message": self.error_message,
            "pre_checkout": self.pre_checkout.to_json() if self.pre_checkout else None,
            "charge_id": self.charge_id, "successful_payment": self.successful_payment,
            "update": self.update, "delivery": self.delivery.to_json() if self.delivery else None,
        }


@dataclass
class JoinResult:
    """Outcome of a join attempt; ``reason`` says why not (see ``membership``) or ``join_request_sent``."""

    joined: bool
    reason: str | None = None
    update: dict | None = None
    delivery: DeliveryResult | None = None

    def to_json(self) -> dict:
        return {
            "joined": self.joined, "reason": self.reason, "update": self.update,
            "delivery": self.delivery.to_json() if self.delivery else None,
        }


class UserActions:
    """Mixed into BotApiEmulator, which provides ``state`` and ``delivery``."""

    state: TelegramState
    delivery: WebhookDelivery

    # --- users and messages -----------------------------------------------------------------

    def user(self, user_id: int, first_name: str | None = None, username: str | None = None, **details: Any) -> User:
        """Create or get a user (details such as ``has_started_bot=True`` update it)."""
        return self.state.user(user_id, first_name, username, **details)

    def send_message(self, user: UserRef, text: str) -> ActionResult:
        """The user writes to the bot in private; ``/commands`` carry bot_command entities."""
        self._require_webhook()
        with self.state.lock:
            sender = self._user(user)
            sender.has_started_bot = True
            chat = self.state.private_chat(sender)
            message = text_message(chat.allocate_message_id(), self.state.clock.now(), sender.to_json(), text)
            self.state.keep_message(chat, message)
        return self._deliver(message_update(self.delivery.allocate_update_id(), message))

    def press_button(self, user: UserRef, message: Any, callback_data: str) -> ActionResult:
        """The user presses an inline button of a message the bot sent.

        ``message`` is the Message (dict) the bot got back, the Call that sent
        it, or ``(chat_id, message_id)``.  The update carries the message as it
        is now (after any edits).  The data is not checked against the
        keyboard: a modified client can send any callback data.
        """
        self._require_webhook()
        with self.state.lock:
            presser = self._user(user)
            current = self._stored_message(message)
            query_id = self.state.new_query_id()
            self.state.callback_queries[query_id] = PendingQuery(query_id, presser.id, time.monotonic())
            update = callback_query_update(
                self.delivery.allocate_update_id(), query_id, presser.to_json(), dict(current), callback_data
            )
        result = self._deliver(update)
        result.query_id = query_id
        return result

    def block_bot(self, user: UserRef) -> ActionResult:
        """The user blocks the bot: my_chat_member, and sends to them fail with 403."""
        return self._set_blocked(user, blocked=True)

    def unblock_bot(self, user: UserRef) -> ActionResult:
        return self._set_blocked(user, blocked=False)

    def _set_blocked(self, user: UserRef, blocked: bool) -> ActionResult:
        self._require_webhook()
        with self.state.lock:
            target = self._user(user)
            target.has_blocked_bot = blocked
            bot = self.state.bot.to_json()
            before, after = ("member", "kicked") if blocked else ("kicked", "member")
            chat = self.state.private_chat(target).to_json()
            update = my_chat_member_update(
                self.delivery.allocate_update_id(), chat, target.to_json(), self.state.clock.now(),
                chat_member_json(before, bot), chat_member_json(after, bot),
            )
        return self._deliver(update)

    # --- payments ---------------------------------------------------------------------------

    def pre_checkout(self, user: UserRef, payload: str, total_amount: int, currency: str = "XTR") -> PreCheckoutAnswer:
        """Deliver only a pre-checkout query (any amount, payload, currency) and return the bot's answer.

        Waits up to the pre-checkout timeout (10 s, like Telegram) for answerPreCheckoutQuery.
        """
        self._require_webhook()
        with self.state.lock:
            payer = self._user(user)
            query_id = self.state.new_query_id()
            pending = PendingQuery(query_id, payer.id, time.monotonic())
            self.state.pre_checkout_queries[query_id] = pending
            update = pre_checkout_query_update(
                self.delivery.allocate_update_id(), query_id, payer.to_json(), currency, total_amount, payload
            )
        delivery = self.delivery.deliver(update)
        if delivery.delivered:
            remaining = pending.sent_at + self.state.pre_checkout_timeout - time.monotonic()
            pending.answered.wait(max(0.0, remaining))
        answered = pending.answered.is_set()
        return PreCheckoutAnswer(
            query_id, answered, pending.ok if answered else None,
            pending.error_message if answered else None, update, delivery,
        )

    def pay_invoice(self, user: UserRef, invoice: Any) -> PaymentResult:
        """The user pays an invoice (a sendInvoice message or a createInvoiceLink link).

        ``invoice`` is the link, the Message the bot got back, the Call that
        created it, ``(chat_id, message_id)`` or an ``Invoice``.  Telegram asks
        the bot first (pre_checkout_query); only an ``ok`` answer in time
        leads to the payment, its Star transaction and the successful_payment
        message.  A subscription link starts a 30-day subscription.
        """
        found = self._invoice(invoice)
        answer = self.pre_checkout(user, found.payload, found.amount, found.currency)
        if not answer.answered:
            return PaymentResult(ok=False, reason="no_answer", pre_checkout=answer)
        if not answer.ok:
            return PaymentResult(ok=False, reason="declined", error_message=answer.error_message, pre_checkout=answer)
        with self.state.lock:
            payer = self._user(user)
            if found.subscription_period:
                payment = self.state.start_subscription(payer, found.amount, found.payload)
            else:
                payment = self.state.record_payment(payer, found.amount, found.payload, found.currency)
        return self._deliver_payment(payer, payment, answer)

    def renew_subscription(self, user: UserRef, charge_id: str) -> PaymentResult:
        """Telegram charges the next period of a subscription (any of its charge ids names it)."""
        self._require_webhook()
        with self.state.lock:
            payer = self._user(user)
            subscription = self.state.subscription_of(charge_id)
            if subscription is None or subscription.user_id != payer.id:
                raise ValueError(f"{charge_id!r} is not a subscription payment of user {payer.id}")
            if subscription.canceled_by_bot:
                return PaymentResult(ok=False, reason="subscription_canceled")
            payment = self.state.renew_subscription(subscription)
        return self._deliver_payment(payer, payment, None)

    def replay_successful_payment(self, update_or_charge: dict | str, update_id: int | None = None) -> ActionResult:
        """Send a successful_payment message again under a new update_id (no new payment happens).

        ``update_or_charge`` is the original update or the payment's charge id.
        """
        if isinstance(update_or_charge, str):
            message = self._payment_message(update_or_charge)
        else:
            message = update_or_charge["message"]
        new_id = update_id if update_id is not None else self.delivery.allocate_update_id()
        return self._deliver(message_update(new_id, message))

    def refund(self, user: UserRef, charge_id: str) -> ActionResult:
        """Telegram refunds a payment on its own (a dispute): a refund transaction and a refunded_payment message."""
        self._require_webhook()
        with self.state.lock:
            payer = self._user(user)
            payment = self.state.payments.get(charge_id)
            if payment is None or payment.user_id != payer.id:
                raise ValueError(f"no payment {charge_id!r} by user {payer.id}")
            if payment.refunded:
                raise ValueError(f"payment {charge_id!r} is already refunded")
            self.state.record_refund(payment)
            chat = self.state.private_chat(payer)
            message = refunded_payment_message(
                chat.allocate_message_id(), self.state.clock.now(), payer.to_json(), payment.refunded_payment_json()
            )
            self.state.keep_message(chat, message)
        return self._deliver(message_update(self.delivery.allocate_update_id(), message))

    def update_subscription(self, user: UserRef, charge_id: str, state: str) -> ActionResult:
        """Bot API 10.2 ``subscription`` update: the subscription became canceled, active or failed."""
        self._require_webhook()
        with self.state.lock:
            subscriber = self._user(user)
            subscription = self.state.subscription_of(charge_id)
            if subscription is None or subscription.user_id != subscriber.id:
                raise ValueError(f"{charge_id!r} is not a subscription payment of user {subscriber.id}")
            update = subscription_update(
                self.delivery.allocate_update_id(), subscriber.to_json(), subscription.payload, state
            )
        return self._deliver(update)

    def record_transaction_without_update(self, user: UserRef, amount: int, payload: str,
                                          subscription: bool = False) -> Payment:
        """A Stars payment Telegram has but the bot never heard of (for reconciliation tests)."""
        with self.state.lock:
            payer = self._user(user)
            if subscription:
                return self.state.start_subscription(payer, amount, payload)
            return self.state.record_payment(payer, amount, payload)

    # --- channel membership -----------------------------------------------------------------

    def join_via_link(self, user: UserRef, invite_link: str | dict) -> JoinResult:
        """The user opens an invite link: joins (chat_member with the link), is refused, or requests to join."""
        self._require_webhook()
        url = invite_link["invite_link"] if isinstance(invite_link, dict) else invite_link
        with self.state.lock:
            joiner = self._user(user)
            link = self.state.invite_links.get(url)
            refusal = join_refusal(self.state, link, joiner)
            if refusal is not None:
                return JoinResult(joined=False, reason=refusal)
            chat = self.state.chats[link.chat_id]
            if link.creates_join_request:
                link.pending_join_requests.add(joiner.id)
                update = chat_join_request_update(
                    self.delivery.allocate_update_id(), chat.to_json(), joiner.to_json(), self.state.clock.now(),
                    link.to_json(self.state.users[link.creator_id]),
                )
                joined, reason = False, JOIN_REQUEST_SENT
            else:
                announce = change_status(self.state, chat, joiner, "member", joiner, joined_via=link)
                update = announce(self.delivery.allocate_update_id())
                joined, reason = True, None
        return JoinResult(joined, reason, update, self.delivery.deliver(update))

    def leave(self, user: UserRef, chat_id: int | None = None) -> ActionResult:
        """The user leaves the channel (its invite link's member_limit frees a place)."""
        self._require_webhook()
        with self.state.lock:
            leaver = self._user(user)
            chat = self.state.chats[chat_id if chat_id is not None else self.state.channel_id]
            if not chat.is_member(leaver.id, self.state.clock.now()):
                raise ValueError(f"user {leaver.id} is not a member of chat {chat.id}")
            update = change_status(self.state, chat, leaver, "left", leaver)(self.delivery.allocate_update_id())
        return self._deliver(update)

    # --- internals --------------------------------------------------------------------------

    def _user(self, user: UserRef) -> User:
        return user if isinstance(user, User) else self.state.user(user)

    def _require_webhook(self) -> None:
        with self.state.lock:
            if not self.state.webhook.url:
                raise NoWebhookError(
                    "the bot has not set a webhook (no setWebhook call yet): "
                    "wait_for_call('setWebhook') before acting as a user"
                )

    def _deliver(self, update: dict) -> ActionResult:
        return ActionResult(update, self.delivery.deliver(update))

    def _deliver_payment(self, payer: User, payment: Payment, answer: PreCheckoutAnswer | None) -> PaymentResult:
        with self.state.lock:
            chat = self.state.private_chat(payer)
            message = successful_payment_message(
                chat.allocate_message_id(), payment.date, payer.to_json(), payment.successful_payment_json()
            )
            self.state.keep_message(chat, message)
        update = message_update(self.delivery.allocate_update_id(), message)
        delivery = self.delivery.deliver(update)
        return PaymentResult(
            ok=True, pre_checkout=answer, charge_id=payment.charge_id,
            successful_payment=message["successful_payment"], update=update, delivery=delivery,
        )

    def _payment_message(self, charge_id: str) -> dict:
        with self.state.lock:
            payment = self.state.payments.get(charge_id)
            if payment is None:
                raise ValueError(f"no payment {charge_id!r}")
            chat = self.state.private_chat(self.state.users[payment.user_id])
            for message in chat.messages.values():
                if message.get("successful_payment", {}).get("telegram_payment_charge_id") == charge_id:
                    return message
        raise ValueError(f"payment {charge_id!r} was never announced to the bot")

    def _stored_message(self, reference: Any) -> dict:
        chat_id, message_id = _message_key(reference)
        chat = self.state.find_chat(chat_id)
        if chat is None or message_id not in chat.messages:
            raise ValueError(f"no message {message_id} in chat {chat_id} (never sent, or deleted)")
        return chat.messages[message_id]

    def _invoice(self, reference: Any) -> Invoice:
        if isinstance(reference, Invoice):
            return reference
        if isinstance(reference, Call):
            reference = reference.result
        with self.state.lock:
            if isinstance(reference, str):
                matches = [invoice for invoice in self.state.invoices if invoice.link == reference]
            else:
                key = _message_key(reference)
                matches = [invoice for invoice in self.state.invoices if (invoice.chat_id, invoice.message_id) == key]
        if not matches:
            raise ValueError(f"no invoice matches {reference!r} (an invoice link or a sendInvoice message)")
        return matches[-1]


def _message_key(reference: Any) -> tuple[int, int]:
    """(chat_id, message_id) of a Message dict, of the Call that returned one, or of a pair."""
    if isinstance(reference, Call):
        reference = reference.result
    if isinstance(reference, dict):
        return reference["chat"]["id"], reference["message_id"]
    chat_id, message_id = reference
    return chat_id, message_id
