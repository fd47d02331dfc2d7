"""Payment actions: what paying users, and Telegram's Stars billing, do to the bot.

A payment exists only after the bot approved the pre-checkout query in time;
renewals, refunds and subscription changes follow from payments that exist.
"""

from __future__ import annotations

import time
from typing import Any

from .action_base import ActionBase, UserRef, message_key
from .action_results import ActionResult, PaymentResult, PreCheckoutAnswer
from .model import Invoice, Payment, PendingQuery, User
from .recorder import Call
from .updates import (
    message_update,
    pre_checkout_query_update,
    refunded_payment_message,
    subscription_update,
    successful_payment_message,
)

SUBSCRIPTION_STATES = ("canceled", "active", "failed")


class PaymentActions(ActionBase):
    """Mixed into UserActions: pre-checkout, payments, renewals, refunds, subscription updates."""

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
            if not subscription.renews:
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
        """Bot API 10.2 ``subscription`` update: the user cancelled (``canceled``), re-enabled a
        subscription they had cancelled (``active``), or a renewal payment failed (``failed``).

        The subscription's own state follows: a cancelled one is not renewed until re-enabled.
        """
        self._require_webhook()
        if state not in SUBSCRIPTION_STATES:
            raise ValueError(f"a subscription's state is one of {SUBSCRIPTION_STATES}, not {state!r}")
        with self.state.lock:
            subscriber = self._user(user)
            subscription = self.state.subscription_of(charge_id)
            if subscription is None or subscription.user_id != subscriber.id:
                raise ValueError(f"{charge_id!r} is not a subscription payment of user {subscriber.id}")
            subscription.canceled_by_user = state == "canceled" or (subscription.canceled_by_user and state != "active")
            subscription.renewal_failed = state == "failed"
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

    def announce_payment(self, charge_id: str) -> PaymentResult:
        """Deliver the successful_payment of a payment recorded without one (its pre-checkout
        answered by an earlier deploy, say): the bot hears of it now."""
        self._require_webhook()
        with self.state.lock:
            payment = self.state.payments.get(charge_id)
            if payment is None:
                raise ValueError(f"no payment {charge_id!r}")
            payer = self.state.users[payment.user_id]
        return self._deliver_payment(payer, payment, None)

    def record_refund_without_update(self, charge_id: str) -> None:
        """A refund Telegram made that the bot never heard of (for reconciliation tests)."""
        with self.state.lock:
            payment = self.state.payments.get(charge_id)
            if payment is None or payment.refunded:
                raise ValueError(f"no unrefunded payment {charge_id!r}")
            self.state.record_refund(payment)

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

    def _invoice(self, reference: Any) -> Invoice:
        if isinstance(reference, Invoice):
            return reference
        if isinstance(reference, Call):
            reference = reference.result
        with self.state.lock:
            if isinstance(reference, str):
                matches = [invoice for invoice in self.state.invoices if invoice.link == reference]
            else:
                key = message_key(reference)
                matches = [invoice for invoice in self.state.invoices if (invoice.chat_id, invoice.message_id) == key]
        if not matches:
            raise ValueError(f"no invoice matches {reference!r} (an invoice link or a sendInvoice message)")
        return matches[-1]
