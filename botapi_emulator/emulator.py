"""BotApiEmulator: the object tests, the sandbox and the benchmark hold.

It wires the parts together (state, bot surface, faults, call record,
webhook delivery, HTTP server, control surface) and offers the whole
Python API in one place: lifecycle, delivery, user actions (from
``UserActions``), faults, observation and state helpers.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from .actions import UserActions
from .bot_surface import BotSurface
from .control import ControlSurface
from .delivery import DEFAULT_RETRY_DELAYS, DeliveryResult, WebhookDelivery
from .faults import FaultInjector
from .methods_bot import commands_key
from .model import User
from .recorder import Call, CallPredicate, CallRecorder
from .server import EmulatorHTTPServer
from .state import TelegramState

DEFAULT_TOKEN = "123456:TEST-token"
DEFAULT_CHANNEL_ID = -1001000000001


def _bot_id(token: str) -> int:
    prefix = token.split(":", 1)[0]
    return int(prefix) if prefix.isdigit() else 123456


class BotApiEmulator(UserActions):
    """A Telegram Bot API server on 127.0.0.1 for one bot and one private channel."""

    def __init__(self, token: str = DEFAULT_TOKEN, channel_id: int = DEFAULT_CHANNEL_ID, strict: bool = True,
                 host: str = "127.0.0.1", port: int = 0,
                 retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS, max_attempts: int = 5,
                 timeout: float = 10.0, pre_checkout_timeout: float = 10.0,
                 bot_username: str = "membership_test_bot", channel_title: str = "Private Channel",
                 notify_bot_refunds: bool = True, implicit_users: bool = False,
                 first_update_id: int = 100_000_001) -> None:
        """Configure; nothing listens until ``start()``.

        ``strict``: refuse unknown methods and mistyped parameters (404/400).
        ``port`` 0 picks a free port.  ``retry_delays``/``max_attempts``/``timeout``:
        webhook retry back-off, attempts per update, seconds per POST.
        ``pre_checkout_timeout``: how long a payment waits for the bot's answer.
        ``notify_bot_refunds``: send refunded_payment for refunds the bot makes.
        ``implicit_users``: treat any unknown positive chat id as a user who
        started the bot, for suites that post updates straight to the bot.
        ``first_update_id``: where update ids start; a bot whose ledger outlives
        the emulator (the local sandbox's SQLite file) needs them to keep growing.
        """
        self.token = token
        bot = User(id=_bot_id(token), first_name="Membership Bot", username=bot_username, is_bot=True)
        self.state = TelegramState(bot, channel_id, channel_title)
        self.state.pre_checkout_timeout = pre_checkout_timeout
        self.state.notify_bot_refunds = notify_bot_refunds
        self.state.implicit_users = implicit_users
        self.recorder = CallRecorder()
        self.faults = FaultInjector()
        self.surface = BotSurface(token, self.state, self.recorder, self.faults, self._notify, strict)
        self.delivery = WebhookDelivery(
            self.state, self.surface.execute_from_webhook_response, retry_delays, max_attempts, timeout,
            first_update_id,
        )
        self._server = EmulatorHTTPServer(host, port, self.surface, ControlSurface(self).handle)
        self._started = False

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "BotApiEmulator":
        if not self._started:
            self._server.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Release held calls (unanswered), stop delivering, close every connection and thread."""
        self.faults.stop()
        self.delivery.stop()
        self._server.stop()
        self._started = False

    def __enter__(self) -> "BotApiEmulator":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL for the bot's TELEGRAM_API_URL: calls go to ``{url}/bot{token}/{method}``."""
        return self._server.url

    @property
    def channel_id(self) -> int:
        return self.state.channel_id

    @property
    def bot_user(self) -> User:
        return self.state.bot

    # --- delivery -----------------------------------------------------------------------------

    def deliver(self, update: dict) -> DeliveryResult:
        """Deliver any update (``update_id`` assigned when missing) the way Telegram would.

        Its users become known (a private message means the user started the
        bot) and its queries answerable, as they would be on Telegram.
        """
        self.state.learn_from_update(update)
        return self.delivery.deliver(update)

    def deliver_async(self, update: dict) -> Future:
        self.state.learn_from_update(update)
        return self.delivery.deliver_async(update)

    def redeliver(self, update_id: int) -> DeliveryResult:
        return self.delivery.redeliver(update_id)

    def _notify(self, build_update) -> None:
        self.delivery.notify_async(build_update)

    # --- faults -------------------------------------------------------------------------------

    def inject(self, method: str, kind: str, times: int | None = 1, retry_after: int = 2,
               status: int = 500, delay: float = 1.0) -> None:
        """Make the next ``times`` calls to ``method`` ("*" for any) fail: "429", "5xx", "latency", "hang"."""
        self.faults.inject(method, kind, times, retry_after, status, delay)

    def set_latency(self, method: str, seconds: float) -> None:
        self.faults.set_latency(method, seconds)

    def clear_faults(self) -> None:
        self.faults.clear()

    def release_hangs(self) -> None:
        self.faults.release_hangs()

    def wait_for_hangs(self, count: int = 1, timeout: float = 10.0) -> None:
        self.faults.wait_for_hangs(count, timeout)

    # --- observation --------------------------------------------------------------------------

    @property
    def next_call_index(self) -> int:
        """Pass as ``since`` to look only at calls made from now on."""
        return self.recorder.next_index

    def calls(self, method: str | None = None, since: int = 0) -> list[Call]:
        return self.recorder.calls(method, since)

    def wait_for_call(self, method: str | None, predicate: CallPredicate | None = None,
                      timeout: float = 10.0, since: int = 0) -> Call:
        return self.recorder.wait_for_call(method, predicate, timeout, since)

    def wait_for_calls(self, method: str | None, count: int, predicate: CallPredicate | None = None,
                       timeout: float = 10.0, since: int = 0) -> list[Call]:
        return self.recorder.wait_for_calls(method, count, predicate, timeout, since)

    # --- time ---------------------------------------------------------------------------------

    def now(self) -> int:
        """Telegram's current time (Unix seconds), as dates in updates and expiry checks use it."""
        return self.state.clock.now()

    def advance_time(self, seconds: float) -> None:
        """Move Telegram's clock forward: invite links expire, bans end, without sleeping."""
        self.state.clock.advance(seconds)

    # --- state --------------------------------------------------------------------------------

    def messages(self, chat_id: int) -> list[dict]:
        """Messages in a chat (a user id for a private chat), oldest first, as they are now."""
        with self.state.lock:
            chat = self.state.find_chat(chat_id)
            return [dict(message) for message in chat.messages.values()] if chat else []

    def members(self, chat_id: int | None = None) -> list[int]:
        """Ids of the chat's current members (the channel by default), owner and bot included."""
        with self.state.lock:
            chat = self.state.chats[chat_id if chat_id is not None else self.state.channel_id]
            now = self.state.clock.now()
            return [user_id for user_id in chat.members if chat.is_member(user_id, now)]

    def member_status(self, user: User | int, chat_id: int | None = None) -> str:
        user_id = user.id if isinstance(user, User) else user
        with self.state.lock:
            chat = self.state.chats[chat_id if chat_id is not None else self.state.channel_id]
            return chat.status_of(user_id, self.state.clock.now())

    def invite_links(self, chat_id: int | None = None) -> list[dict]:
        """Every invite link of the chat as a ChatInviteLink, plus ``member_count`` (current joiners)."""
        with self.state.lock:
            wanted = chat_id if chat_id is not None else self.state.channel_id
            return [
                {**link.to_json(self.state.users[link.creator_id]), "member_count": self.state.members_joined_via(link)}
                for link in self.state.invite_links.values()
                if link.chat_id == wanted
            ]

    def users(self) -> list[dict]:
        """The people tests and the sandbox act as (not the bot, not the channel's owner), by id."""
        with self.state.lock:
            people = [user for user in self.state.users.values()
                      if not user.is_bot and user.id != self.state.channel_owner.id]
            return [{**user.to_json(), "has_started_bot": user.has_started_bot,
                     "has_blocked_bot": user.has_blocked_bot} for user in sorted(people, key=lambda u: u.id)]

    def invoices(self) -> list[dict]:
        """Every invoice the bot made (sendInvoice messages and createInvoiceLink links), oldest first."""
        with self.state.lock:
            return [vars(invoice).copy() for invoice in self.state.invoices]

    def star_transactions(self) -> list[dict]:
        """All Star transactions, chronological, as getStarTransactions returns them."""
        with self.state.lock:
            return [transaction.to_json() for transaction in self.state.transactions]

    def refunds(self) -> list[dict]:
        with self.state.lock:
            return [transaction.to_json() for transaction in self.state.transactions if transaction.is_refund]

    def payments(self) -> list[dict]:
        """Every payment with its state (refunded, subscription id and expiry)."""
        with self.state.lock:
            return [vars(payment).copy() for payment in self.state.payments.values()]

    def webhook_info(self) -> dict:
        """What getWebhookInfo would answer, plus the secret (tests may need it)."""
        with self.state.lock:
            info = self.state.webhook.to_json(self.state.pending_update_count)
            info["secret_token"] = self.state.webhook.secret_token
            return info

    def commands(self, scope: dict | None = None, language_code: str | None = None) -> list[dict]:
        """The command list set with setMyCommands for a scope (default scope, no language by default)."""
        with self.state.lock:
            return list(self.state.commands.get(commands_key(scope, language_code), []))
