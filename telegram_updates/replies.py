"""The Bot API calls one update asks for, and how each reaches Telegram.

A handler never waits on Telegram. Its calls are collected here while it runs;
when it is done, at most one call whose result nobody needs rides on the
webhook response (Telegram executes it after our 200), and the rest go into
the outbox in the update's transaction, to be sent after commit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from bot_outbox import jobs

# Calls that may ride on the webhook response: Telegram executes them but
# never reports the result, so only calls whose result we do not need.
RIDEABLE = frozenset({
    "sendMessage", "answerCallbackQuery", "answerPreCheckoutQuery", "sendInvoice",
    "editMessageText", "editMessageReplyMarkup", "deleteMessage",
})
# Calls whose order relative to the update's other calls does not matter.
ORDER_FREE = frozenset({"answerCallbackQuery", "answerPreCheckoutQuery"})


@dataclass
class Call:
    method: str
    params: dict
    chat_id: int | None


@dataclass
class Replies:
    update_id: int
    calls: list[Call] = field(default_factory=list)

    def call(self, method: str, params: dict, *, chat_id: int | None = None) -> None:
        """Ask for ``method``; ``chat_id`` orders it after earlier calls to that chat."""
        params = {key: value for key, value in params.items() if value is not None}
        self.calls.append(Call(method, params, chat_id))

    def send_message(self, chat_id: int, text: str, **extra) -> None:
        self.call("sendMessage", {"chat_id": chat_id, "text": text, **extra}, chat_id=chat_id)

    def flush(self, session: Session, *, allow_ride: bool = True) -> dict | None:
        """Queue the calls; returns the webhook response body, if one call rides on it."""
        rider = self._pick_rider() if allow_ride else None
        for call in self.calls:
            if call is not rider:
                jobs.enqueue_call(session, call.method, call.params, chat_id=call.chat_id,
                                    source_update_id=self.update_id)
        return _webhook_response(rider)

    def rider_alone(self) -> dict | None:
        """The webhook response, for an update handled without the session: no call may go to the outbox."""
        rider = self._pick_rider()
        if any(call is not rider for call in self.calls):
            raise ValueError(f"update {self.update_id}: {len(self.calls)} calls, and only one can ride on the answer")
        return _webhook_response(rider)

    def _pick_rider(self) -> Call | None:
        if len(self.calls) == 1 and self.calls[0].method in RIDEABLE:
            return self.calls[0]
        return next((call for call in self.calls if call.method in ORDER_FREE), None)


def _webhook_response(rider: Call | None) -> dict | None:
    """The call as the body of the webhook answer, which Telegram executes."""
    return {"method": rider.method, **rider.params} if rider else None
