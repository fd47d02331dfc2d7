"""Telegram's delivery rules the simulator follows: which queue an update waits in, how long a retry waits."""
from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass


def chat_key(update: dict) -> Hashable:
    """The queue an update waits in: its chat (a private chat's id is the user's), else its sender.

    An update with neither (rare kinds) gets a queue of its own, so it is
    never held behind anything.
    """
    body = next((value for key, value in update.items() if key != "update_id"), None)
    if isinstance(body, dict):
        chat = body.get("chat") or (body.get("message") or {}).get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return chat["id"]
        sender = body.get("from") or body.get("user")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return sender["id"]
    return ("update", update.get("update_id"))


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number ``failures`` (1-based): ``first * factor**(failures-1)``, capped, with jitter.

    The jitter (a random cut of up to ``jitter`` of the delay) keeps the
    retries of many chats failing together from arriving together.
    """

    first: float = 0.1
    factor: float = 2.0
    cap: float = 2.0
    jitter: float = 0.5

    def delay(self, failures: int, rng: random.Random) -> float:
        base = min(self.cap, self.first * self.factor ** max(0, failures - 1))
        return base * (1.0 - self.jitter * rng.random())
