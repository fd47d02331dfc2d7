"""Quarantine for updates whose handler raised: kept whole, with the error."""
from __future__ import annotations

import traceback

from sqlalchemy.orm import Session

from models.dead_letter import DeadLetter
from telegram_updates.ledger import claim_update, update_kind


def quarantine(session: Session, raw: dict, error: BaseException) -> None:
    """Store the update and mark it handled, so redeliveries do not run the bug again."""
    update_id = raw["update_id"]
    claim_update(session, update_id, update_kind(raw))
    session.add(DeadLetter(
        update_id=update_id,
        payload=raw,
        error=f"{type(error).__name__}: {error}"[:500],
        traceback="".join(traceback.format_exception(error))[-20000:],
    ))
