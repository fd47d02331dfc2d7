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
from typing import Any

from .action_base import UserRef, message_key
from .action_results import ActionResult
from .membership_actions import MembershipActions
from .model import PendingQuery, User
from .payment_actions import PaymentActions
from .updates import callback_query_update, chat_member_json, message_update, my_chat_member_update, text_message


class UserActions(PaymentActions, MembershipActions):
    """Mixed into BotApiEmulator, which provides ``state`` and ``delivery``.

    Users and messages are here; payments and channel membership come from
    ``PaymentActions`` and ``MembershipActions``.
    """

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

    def _stored_message(self, reference: Any) -> dict:
        chat_id, message_id = message_key(reference)
        chat = self.state.find_chat(chat_id)
        if chat is None or message_id not in chat.messages:
            raise ValueError(f"no message {message_id} in chat {chat_id} (never sent, or deleted)")
        return chat.messages[message_id]
