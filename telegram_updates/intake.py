"""What every update goes through before its handler: dedupe, and who sent it.

Both writes belong to the update's transaction. On PostgreSQL they travel as
one statement (two data-modifying CTEs), saving a round trip and a parse on
every update; elsewhere they are the two statements of update_ledger and
users.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from models.base import utcnow
from telegram_updates.ledger import claim_update
from telegram_updates.users import FLOOD_WINDOW, remember_user, sender_fields

CLAIM_AND_REMEMBER = text("""
WITH claimed AS (
    INSERT INTO processed_updates (update_id, kind, processed_at)
    VALUES (:update_id, :kind, :now)
    ON CONFLICT (update_id) DO NOTHING
    RETURNING update_id
), seen AS (
    INSERT INTO users AS u (id, username, first_name, language_code, created_at, last_seen_at,
                            window_started_at, updates_in_window)
    SELECT :user_id, :username, :first_name, :language_code, :now, :now, :now, 1 FROM claimed
    ON CONFLICT (id) DO UPDATE SET
        username = excluded.username,
        first_name = excluded.first_name,
        language_code = excluded.language_code,
        last_seen_at = excluded.last_seen_at,
        updates_in_window = CASE WHEN u.window_started_at > :window_opened_after
                                 THEN u.updates_in_window + 1 ELSE 1 END,
        window_started_at = CASE WHEN u.window_started_at > :window_opened_after
                                 THEN u.window_started_at ELSE excluded.window_started_at END
    RETURNING u.updates_in_window
)
SELECT EXISTS (SELECT 1 FROM claimed), (SELECT updates_in_window FROM seen)
""")


def admit(session: Session, update_id: int, kind: str, sender: dict | None,
          now: datetime | None = None) -> int | None:
    """None for an update handled before; else the sender's updates this minute (0 without a sender)."""
    now = now or utcnow()
    if sender is None:
        return 0 if claim_update(session, update_id, kind, now) else None
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return remember_user(session, sender, now) if claim_update(session, update_id, kind, now) else None
    params = {"update_id": update_id, "kind": kind, "now": now, "window_opened_after": now - FLOOD_WINDOW,
              **sender_fields(sender)}
    new, recent = connection.execute(CLAIM_AND_REMEMBER, params).one()
    return recent if new else None
