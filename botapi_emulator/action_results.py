"""What a user action returns: the update it produced and what became of its delivery."""

from __future__ import annotations

from dataclasses import dataclass

from .delivery import DeliveryResult


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
