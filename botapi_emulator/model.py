"""The things Telegram keeps track of, as plain data classes with their JSON forms.

Why separate from ``state``: these are values with no locking or rules of
their own; ``TelegramState`` holds them and enforces the rules.  Each
``to_json`` produces the Bot API object Telegram would send.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .updates import successful_payment_json

ACTIVE_MEMBER_STATUSES = frozenset({"creator", "administrator", "member"})


class Clock:
    """Telegram's clock: real time plus an offset tests can advance (no sleeping for expiry)."""

    def __init__(self) -> None:
        self._offset = 0.0

    def time(self) -> float:
        return time.time() + self._offset

    def now(self) -> int:
        return int(self.time())

    def advance(self, seconds: float) -> None:
        self._offset += seconds


@dataclass
class User:
    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = None
    is_bot: bool = False
    has_started_bot: bool = False
    has_blocked_bot: bool = False

    def to_json(self) -> dict:
        user = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for name in ("last_name", "username", "language_code"):
            if getattr(self, name) is not None:
                user[name] = getattr(self, name)
        return user


@dataclass
class Membership:
    status: str  # creator | administrator | member | left | kicked
    joined_via: str | None = None  # invite link URL the member joined through
    until_date: int = 0  # end of a ban; 0 means forever


@dataclass
class Chat:
    id: int
    type: str  # private | channel | supergroup | group
    title: str | None = None
    username: str | None = None
    private_user: User | None = None
    members: dict[int, Membership] = field(default_factory=dict)
    messages: dict[int, dict] = field(default_factory=dict)
    bot_message_ids: set[int] = field(default_factory=set)  # what the bot may edit
    next_message_id: int = 1

    def to_json(self) -> dict:
        if self.private_user is not None:
            chat = {"id": self.id, "type": "private", "first_name": self.private_user.first_name}
            if self.private_user.username:
                chat["username"] = self.private_user.username
            return chat
        chat = {"id": self.id, "type": self.type, "title": self.title}
        if self.username:
            chat["username"] = self.username
        return chat

    def allocate_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def status_of(self, user_id: int, now: int) -> str:
        membership = self.members.get(user_id)
        if membership is None:
            return "left"
        if membership.status == "kicked" and membership.until_date and membership.until_date <= now:
            return "left"  # a temporary ban has run out
        return membership.status

    def is_member(self, user_id: int, now: int) -> bool:
        return self.status_of(user_id, now) in ACTIVE_MEMBER_STATUSES


@dataclass
class InviteLink:
    url: str
    chat_id: int
    creator_id: int
    name: str | None = None
    expire_date: int | None = None
    member_limit: int | None = None
    creates_join_request: bool = False
    is_primary: bool = False
    is_revoked: bool = False
    pending_join_requests: set[int] = field(default_factory=set)

    def is_expired(self, now: int) -> bool:
        return self.expire_date is not None and self.expire_date <= now

    def to_json(self, creator: User) -> dict:
        link = {
            "invite_link": self.url,
            "creator": creator.to_json(),
            "creates_join_request": self.creates_join_request,
            "is_primary": self.is_primary,
            "is_revoked": self.is_revoked,
        }
        if self.name:
            link["name"] = self.name
        if self.expire_date is not None:
            link["expire_date"] = self.expire_date
        if self.member_limit is not None:
            link["member_limit"] = self.member_limit
        if self.creates_join_request:
            link["pending_join_request_count"] = len(self.pending_join_requests)
        return link


@dataclass
class Invoice:
    """An invoice the bot created: a message (sendInvoice) or a link (createInvoiceLink)."""

    title: str
    description: str
    payload: str
    currency: str
    amount: int
    subscription_period: int | None = None
    link: str | None = None
    chat_id: int | None = None
    message_id: int | None = None


@dataclass
class Payment:
    charge_id: str
    provider_charge_id: str
    user_id: int
    currency: str
    amount: int
    payload: str
    date: int
    subscription_id: str | None = None  # charge id of the subscription's first payment
    subscription_expiration_date: int | None = None
    is_first_recurring: bool = False
    refunded: bool = False

    def successful_payment_json(self) -> dict:
        return successful_payment_json(
            self.charge_id, self.amount, self.payload, self.provider_charge_id, self.currency,
            self.subscription_expiration_date if self.subscription_id is not None else None,
            self.is_first_recurring,
        )

    def refunded_payment_json(self) -> dict:
        return {
            "currency": self.currency,
            "total_amount": self.amount,
            "invoice_payload": self.payload,
            "telegram_payment_charge_id": self.charge_id,
            "provider_payment_charge_id": self.provider_charge_id,
        }


@dataclass
class Subscription:
    subscription_id: str
    user_id: int
    payload: str
    amount: int
    expiration_date: int
    canceled_by_bot: bool = False
    canceled_by_user: bool = False
    renewal_failed: bool = False  # the last renewal payment failed (Telegram sends state "failed")
    charge_ids: list[str] = field(default_factory=list)

    @property
    def renews(self) -> bool:
        return not (self.canceled_by_bot or self.canceled_by_user)


@dataclass
class StarTransaction:
    """A line of getStarTransactions: a payment (incoming) or a refund (outgoing, same id)."""

    id: str
    amount: int
    date: int
    user: User
    invoice_payload: str
    subscription_period: int | None = None
    is_refund: bool = False

    def to_json(self) -> dict:
        partner = {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": self.user.to_json(),
            "invoice_payload": self.invoice_payload,
        }
        if self.subscription_period is not None:
            partner["subscription_period"] = self.subscription_period
        direction = "receiver" if self.is_refund else "source"
        return {"id": self.id, "amount": self.amount, "date": self.date, direction: partner}


@dataclass
class WebhookConfig:
    url: str = ""
    secret_token: str | None = None
    allowed_updates: list[str] = field(default_factory=list)
    max_connections: int = 40
    ip_address: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    drop_generation: int = 0  # bumped by drop_pending_updates: in-flight retries stop

    def to_json(self, pending_update_count: int) -> dict:
        info = {"url": self.url, "has_custom_certificate": False, "pending_update_count": pending_update_count}
        if self.url:
            info["max_connections"] = self.max_connections
            info["ip_address"] = self.ip_address or "127.0.0.1"
            if self.allowed_updates:
                info["allowed_updates"] = list(self.allowed_updates)
        if self.last_error_date is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error_message
        return info


@dataclass
class PendingQuery:
    """A pre-checkout or callback query waiting for the bot's single answer."""

    query_id: str
    user_id: int
    sent_at: float
    answered: threading.Event = field(default_factory=threading.Event)
    ok: bool | None = None
    error_message: str | None = None
