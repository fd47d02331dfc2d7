"""What every method handler shares: its context and the lookups Telegram checks first.

A handler is ``handler(ctx) -> result``: it reads typed parameters from
``ctx.params``, runs while the state lock is held (so check-then-act rules
such as member limits are atomic), raises ``TelegramError`` to refuse, and
queues the updates Telegram would send as a consequence with ``ctx.emit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import bad_request, forbidden
from .model import Chat, User
from .state import TelegramState

UpdateBuilder = Callable[[int], dict]  # gets an update_id, returns the Update


@dataclass
class Described:
    """A result Telegram answers with a ``description`` too (setWebhook: "Webhook was set")."""

    result: Any
    description: str


@dataclass
class MethodContext:
    state: TelegramState
    method: str
    params: dict[str, Any]
    via_webhook_response: bool = False
    emitted: list[UpdateBuilder] = field(default_factory=list)

    @property
    def bot(self) -> User:
        return self.state.bot

    def now(self) -> int:
        return self.state.clock.now()

    def emit(self, build_update: UpdateBuilder) -> None:
        """Queue an update for the webhook, delivered after the call is answered."""
        self.emitted.append(build_update)

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


def find_chat(ctx: MethodContext, chat_id: int | str) -> Chat:
    chat = ctx.state.find_chat(chat_id)
    if chat is None:
        raise bad_request("chat not found")
    return chat


def find_managed_chat(ctx: MethodContext, chat_id: int | str) -> Chat:
    """A group or channel where the bot is an administrator (invite links, bans)."""
    chat = find_chat(ctx, chat_id)
    if chat.private_user is not None:
        raise bad_request("method is available only for supergroups and channel")
    status = chat.status_of(ctx.bot.id, ctx.now())
    if status not in ("administrator", "creator"):
        if status in ("left", "kicked"):
            raise forbidden(f"bot is not a member of the {chat.type} chat")
        raise bad_request("not enough rights to manage the chat")
    return chat


def find_user(ctx: MethodContext, user_id: int, error: str = "user not found") -> User:
    user = ctx.state.users.get(user_id)
    if user is None or user.id == ctx.bot.id:
        raise bad_request(error)
    return user


def check_can_write(ctx: MethodContext, chat: Chat) -> None:
    """Private chats need the user to have started the bot and not blocked it; channels need rights."""
    user = chat.private_user
    if user is not None:
        if user.has_blocked_bot:
            raise forbidden("bot was blocked by the user")
        if not user.has_started_bot:
            raise forbidden("bot can't initiate conversation with a user")
        return
    if chat.status_of(ctx.bot.id, ctx.now()) not in ("administrator", "creator"):
        raise bad_request("need administrator rights in the channel chat")


def check_length(value: str, minimum: int, maximum: int, error: str) -> None:
    if not minimum <= len(value) <= maximum:
        raise bad_request(error)


def find_message(ctx: MethodContext, chat: Chat, message_id: int, error: str) -> dict:
    message = chat.messages.get(message_id)
    if message is None:
        raise bad_request(error)
    return message
