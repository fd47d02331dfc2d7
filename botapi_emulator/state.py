"""Everything Telegram knows about the bot's world, behind one lock.

Why one lock: the bot calls methods from many threads while tests act as
users from others; each method or user action is a short critical section,
so a single re-entrant lock keeps every rule (member limits, refunds,
answer-once queries) race-free without any cleverness.  Nothing slow (HTTP,
waiting) happens while it is held.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time

from settings.telegram import SUBSCRIPTION_PERIOD_SECONDS

from .model import (
    Chat,
    Clock,
    InviteLink,
    Invoice,
    Membership,
    Payment,
    PendingQuery,
    StarTransaction,
    Subscription,
    User,
    WebhookConfig,
)


class TelegramState:
    """Users, chats, members, messages, invoices, invite links, payments and transactions."""

    def __init__(self, bot: User, channel_id: int, channel_title: str = "Private Channel") -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.bot = bot
        self.channel_id = channel_id
        self.channel_owner = User(id=1000000001, first_name="Channel Owner", username="channel_owner")
        self.users: dict[int, User] = {bot.id: bot, self.channel_owner.id: self.channel_owner}
        self.chats: dict[int, Chat] = {}
        self.invite_links: dict[str, InviteLink] = {}
        self.invoices: list[Invoice] = []
        self.payments: dict[str, Payment] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.transactions: list[StarTransaction] = []
        self.webhook = WebhookConfig()
        self.pending_update_count = 0  # updates being delivered or retried (kept by delivery)
        self.pre_checkout_timeout = 10.0  # seconds the bot has to answer a pre-checkout query
        self.notify_bot_refunds = True  # send a refunded_payment message for refunds the bot makes
        self.implicit_users = False  # unknown positive chat ids are users who started the bot
        self.commands: dict[str, list[dict]] = {}
        self.pre_checkout_queries: dict[str, PendingQuery] = {}
        self.callback_queries: dict[str, PendingQuery] = {}
        self._query_ids = itertools.count(4_200_000_000_000_000_001)
        self.add_channel(channel_id, channel_title)

    # --- users and chats ---------------------------------------------------------------------

    def add_channel(self, chat_id: int, title: str, username: str | None = None) -> Chat:
        with self.lock:
            channel = Chat(id=chat_id, type="channel", title=title, username=username)
            channel.members[self.channel_owner.id] = Membership("creator")
            channel.members[self.bot.id] = Membership("administrator")
            self.chats[chat_id] = channel
            return channel

    def user(self, user_id: int, first_name: str | None = None, username: str | None = None, **details) -> User:
        """Get a user, creating it on first use; given details update it."""
        with self.lock:
            user = self.users.get(user_id)
            if user is None:
                user = User(id=user_id, first_name=first_name or f"User {user_id}", username=username)
                self.users[user_id] = user
            else:
                user.first_name = first_name or user.first_name
                user.username = username or user.username
            for name, value in details.items():
                setattr(user, name, value)
            return user

    def private_chat(self, user: User) -> Chat:
        with self.lock:
            chat = self.chats.get(user.id)
            if chat is None:
                chat = Chat(id=user.id, type="private", private_user=user)
                self.chats[user.id] = chat
            return chat

    def find_chat(self, chat_id: int | str) -> Chat | None:
        """Resolve a chat id or ``@username`` the way Telegram does (private chats exist once a user is known)."""
        with self.lock:
            if isinstance(chat_id, str):
                username = chat_id.removeprefix("@").lower()
                return next(
                    (chat for chat in self.chats.values() if chat.username and chat.username.lower() == username),
                    None,
                )
            chat = self.chats.get(chat_id)
            if chat is None and chat_id not in self.users and chat_id > 0 and self.implicit_users:
                self.user(chat_id, has_started_bot=True)
            if chat is None and chat_id in self.users and chat_id != self.bot.id:
                chat = self.private_chat(self.users[chat_id])
            return chat

    def learn_from_update(self, update: dict) -> None:
        """Telegram knows what is in the updates it sends; so must the emulator for raw updates.

        Every user in the update becomes known, a user writing in private has
        started the bot, and a callback or pre-checkout query can be answered.
        """
        with self.lock:
            for user in _users_in(update):
                if user["id"] not in self.users:
                    self.user(user["id"], user.get("first_name"), user.get("username"))
            message = update.get("message") or {}
            if message.get("chat", {}).get("type") == "private" and "from" in message:
                self.users[message["from"]["id"]].has_started_bot = True
            for kind, pending in (("callback_query", self.callback_queries),
                                  ("pre_checkout_query", self.pre_checkout_queries)):
                query = update.get(kind)
                if query is not None and query["id"] not in pending:
                    pending[query["id"]] = PendingQuery(query["id"], query["from"]["id"], time.monotonic())

    # --- messages ----------------------------------------------------------------------------

    def store_message(self, chat: Chat, sender: User, **content) -> dict:
        """Create a message in a chat (sent by the bot or by a user) and return its JSON.

        Channel posts carry ``sender_chat`` (the channel) instead of ``from``, as on Telegram.
        """
        with self.lock:
            message = {"message_id": chat.allocate_message_id()}
            if chat.type == "channel":
                message["sender_chat"] = chat.to_json()
            else:
                message["from"] = sender.to_json()
            message.update({"chat": chat.to_json(), "date": self.clock.now()})
            message.update({key: value for key, value in content.items() if value is not None})
            self.keep_message(chat, message, sent_by_bot=sender.id == self.bot.id)
            return message

    def keep_message(self, chat: Chat, message: dict, sent_by_bot: bool = False) -> None:
        """Remember a message built elsewhere (a user's message, a service message)."""
        with self.lock:
            chat.messages[message["message_id"]] = message
            if sent_by_bot:
                chat.bot_message_ids.add(message["message_id"])

    # --- invite links and membership ---------------------------------------------------------

    def new_invite_link(self, chat: Chat, **options) -> InviteLink:
        with self.lock:
            url = f"https://t.me/+{secrets.token_urlsafe(12)}"
            link = InviteLink(url=url, chat_id=chat.id, creator_id=self.bot.id, **options)
            self.invite_links[link.url] = link
            return link

    def members_joined_via(self, link: InviteLink) -> int:
        """Members who joined through the link and are still in the chat (what member_limit counts)."""
        with self.lock:
            chat = self.chats[link.chat_id]
            now = self.clock.now()
            return sum(
                1
                for user_id, membership in chat.members.items()
                if membership.joined_via == link.url and chat.is_member(user_id, now)
            )

    def set_status(self, chat: Chat, user_id: int, status: str, joined_via: str | None = None,
                   until_date: int = 0) -> None:
        with self.lock:
            chat.members[user_id] = Membership(status=status, joined_via=joined_via, until_date=until_date)

    # --- payments ----------------------------------------------------------------------------

    def new_query_id(self) -> str:
        return str(next(self._query_ids))

    def new_charge_id(self) -> str:
        return f"stxEmu{secrets.token_hex(12)}"

    def record_payment(
        self, user: User, amount: int, payload: str, currency: str = "XTR",
        subscription: Subscription | None = None, charge_id: str | None = None,
    ) -> Payment:
        """Record a successful Stars payment and its transaction (id = telegram_payment_charge_id)."""
        with self.lock:
            payment = Payment(
                charge_id=charge_id or self.new_charge_id(),
                provider_charge_id=f"{user.id}_{len(self.payments) + 1}",
                user_id=user.id,
                currency=currency,
                amount=amount,
                payload=payload,
                date=self.clock.now(),
            )
            if subscription is not None:
                payment.subscription_id = subscription.subscription_id
                payment.subscription_expiration_date = subscription.expiration_date
                payment.is_first_recurring = not subscription.charge_ids
                subscription.charge_ids.append(payment.charge_id)
            self.payments[payment.charge_id] = payment
            self.transactions.append(StarTransaction(
                id=payment.charge_id, amount=amount, date=payment.date, user=user, invoice_payload=payload,
                subscription_period=SUBSCRIPTION_PERIOD_SECONDS if subscription is not None else None,
            ))
            return payment

    def start_subscription(self, user: User, amount: int, payload: str) -> Payment:
        """Record the first payment of a Stars subscription (its charge id names the subscription)."""
        with self.lock:
            charge_id = self.new_charge_id()
            subscription = Subscription(
                subscription_id=charge_id, user_id=user.id, payload=payload, amount=amount,
                expiration_date=self.clock.now() + SUBSCRIPTION_PERIOD_SECONDS,
            )
            self.subscriptions[charge_id] = subscription
            return self.record_payment(user, amount, payload, subscription=subscription, charge_id=charge_id)

    def renew_subscription(self, subscription: Subscription) -> Payment:
        """Telegram charges the next period: a new charge id, expiration moved on by one period."""
        with self.lock:
            subscription.expiration_date += SUBSCRIPTION_PERIOD_SECONDS
            user = self.users[subscription.user_id]
            return self.record_payment(user, subscription.amount, subscription.payload, subscription=subscription)

    def subscription_of(self, charge_id: str) -> Subscription | None:
        with self.lock:
            payment = self.payments.get(charge_id)
            if payment is None or payment.subscription_id is None:
                return None
            return self.subscriptions[payment.subscription_id]

    def record_refund(self, payment: Payment) -> StarTransaction:
        with self.lock:
            payment.refunded = True
            refund = StarTransaction(
                id=payment.charge_id, amount=payment.amount, date=self.clock.now(), user=self.users[payment.user_id],
                invoice_payload=payment.payload,
                subscription_period=SUBSCRIPTION_PERIOD_SECONDS if payment.subscription_id is not None else None,
                is_refund=True,
            )
            self.transactions.append(refund)
            return refund

    def star_balance(self) -> int:
        with self.lock:
            return sum(-t.amount if t.is_refund else t.amount for t in self.transactions)


def _users_in(value) -> list[dict]:
    """Every User object (a dict with id, is_bot and first_name) inside an update."""
    if isinstance(value, list):
        return [user for item in value for user in _users_in(item)]
    if not isinstance(value, dict):
        return []
    found = [value] if {"id", "is_bot", "first_name"} <= value.keys() and not value["is_bot"] else []
    return found + [user for item in value.values() for user in _users_in(item)]
