"""Delivering one broadcast message: the outbox job kind, its runner and its give-up handler.

The job is queued by ``operations.broadcast`` in the transaction that writes
its recipient row. Here the domain side: the runner sends the message and
marks the recipient sent; when Telegram refuses it for good, the recipient
is marked failed and, on a 403 (the user blocked the bot), the user is
marked ``blocked_at`` so later broadcasts skip them.
"""
from __future__ import annotations

import logging
import re

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot_outbox.runners import JobContext
from models.base import utcnow
from models.broadcast import FAILED, QUEUED, SENT, BroadcastRecipient
from models.user import User

BROADCAST_JOB = "broadcast_message"
# The reason the sender gives a refusal: "<method>: <code> <description>" (bot_outbox.client.TelegramError).
_BLOCKED = re.compile(r"^sendMessage: 403\b")

log = logging.getLogger(__name__)


def job_payload(broadcast_id: int, user_id: int, text: str) -> dict:
    return {"broadcast_id": broadcast_id, "user_id": user_id, "text": text}


def run_broadcast_message(job, context: JobContext) -> None:
    payload = job.payload
    context.client.call("sendMessage", {"chat_id": payload["user_id"], "text": payload["text"]})
    with context.transaction() as session:
        _settle(session, payload, SENT)


def give_up_broadcast_message(session: Session, job, reason: str) -> None:
    """Refused for good: the recipient failed and, if they blocked the bot, they are skipped from now on."""
    payload = job.payload
    _settle(session, payload, FAILED, error=reason[:2000])
    if _BLOCKED.match(reason):
        session.execute(update(User).where(User.id == payload["user_id"], User.blocked_at.is_(None))
                        .values(blocked_at=utcnow()).execution_options(synchronize_session=False))
        log.info("user %s blocked the bot: later broadcasts skip them", payload["user_id"])


def _settle(session: Session, payload: dict, status: str, error: str | None = None) -> None:
    session.execute(
        update(BroadcastRecipient)
        .where(BroadcastRecipient.broadcast_id == payload["broadcast_id"],
               BroadcastRecipient.user_id == payload["user_id"], BroadcastRecipient.status == QUEUED)
        .values(status=status, finished_at=utcnow(), error=error)
        .execution_options(synchronize_session=False))
