"""Quarantine for updates whose handler raised: kept whole, with the error, and the admins told.

The admins hear of it in Telegram at most once per ``ALERT_EVERY`` (a named
lease is the rate limit, shared by every worker and replica), so a bug that
poisons every update does not flood them.
"""
from __future__ import annotations

import traceback
from datetime import timedelta

from sqlalchemy.orm import Session

from bot_outbox import jobs
from database import leases
from models.dead_letter import DeadLetter
from settings import Settings
from telegram_updates.ledger import claim_update, update_kind

ALERT_EVERY = timedelta(minutes=10)
ALERT_LEASE = "dead-letter-alert"


def quarantine(session: Session, settings: Settings, raw: dict, error: BaseException) -> None:
    """Store the update and mark it handled, so redeliveries do not run the bug again."""
    update_id = raw["update_id"]
    claim_update(session, update_id, update_kind(raw))
    session.add(DeadLetter(
        update_id=update_id,
        payload=raw,
        error=f"{type(error).__name__}: {error}"[:500],
        traceback="".join(traceback.format_exception(error))[-20000:],
    ))
    _alert_admins(session, settings, update_id, error)


def _alert_admins(session: Session, settings: Settings, update_id: int, error: BaseException) -> None:
    if not settings.admin_ids or not leases.acquire(session, ALERT_LEASE, leases.holder_id(), ALERT_EVERY):
        return  # told within the last ALERT_EVERY: the lease runs out on its own
    text = (f"An update failed with a bug and was kept as a dead letter: update {update_id}, "
            f"{type(error).__name__}: {str(error)[:200]}. Later ones in the next "
            f"{int(ALERT_EVERY.total_seconds() // 60)} minutes are kept without a message.")
    for admin_id in sorted(settings.admin_ids):
        jobs.enqueue_call(session, "sendMessage", {"chat_id": admin_id, "text": text}, chat_id=admin_id)
