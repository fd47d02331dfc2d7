"""What every user action shares: finding the user, requiring a webhook, delivering the update."""

from __future__ import annotations

from typing import Any, Union

from .action_results import ActionResult
from .delivery import NoWebhookError, WebhookDelivery
from .model import User
from .recorder import Call
from .state import TelegramState

UserRef = Union[User, int]


class ActionBase:
    """The ground the action mixins stand on; BotApiEmulator provides ``state`` and ``delivery``."""

    state: TelegramState
    delivery: WebhookDelivery

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


def message_key(reference: Any) -> tuple[int, int]:
    """(chat_id, message_id) of a Message dict, of the Call that returned one, or of a pair."""
    if isinstance(reference, Call):
        reference = reference.result
    if isinstance(reference, dict):
        return reference["chat"]["id"], reference["message_id"]
    chat_id, message_id = reference
    return chat_id, message_id
