"""Who has talked to the bot: one upsert per update, straight from the raw update."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, Select, bindparam, case, literal, select
from sqlalchemy.orm import Session

from database.upsert import run_prepared
from models.base import utcnow
from models.user import User

FLOOD_WINDOW = timedelta(minutes=1)


def sender_of(raw: dict, kind: str) -> dict | None:
    """The Telegram ``User`` behind an update, if its kind has one."""
    body = raw.get(kind)
    if not isinstance(body, dict):
        return None
    sender = body.get("from")
    if isinstance(sender, dict) and isinstance(sender.get("id"), int) and not sender.get("is_bot"):
        return sender
    return None


def sender_fields(sender: dict) -> dict:
    """What we keep of a Telegram User, trimmed to the columns."""
    return {
        "user_id": sender["id"],
        "username": _text(sender.get("username"), 64),
        "first_name": _text(sender.get("first_name"), 128) or "",
        "language_code": _text(sender.get("language_code"), 16),
    }


def remember_user(session: Session | Connection, sender: dict, now: datetime | None = None) -> int:
    """Upsert the user; returns how many updates they sent in the current minute.

    The flood counter rides on the same statement, so it costs no extra round
    trip and holds across workers and replicas (it lives in the database).
    """
    params = upsert_params(sender, now or utcnow())
    return run_prepared(session, "remember_user", lambda insert: upsert_statement(insert), params).scalar_one()


def upsert_params(sender: dict, now: datetime) -> dict:
    """The bound values of :func:`upsert_statement` (and of intake's combined statement)."""
    return {**sender_fields(sender), "now": now, "window_opened_after": now - FLOOD_WINDOW}


def upsert_statement(insert, rows: Select | None = None):
    """INSERT the sender, or refresh them and count this update in their flood window.

    ``rows`` is a SELECT of a new user's row (:func:`new_row`, perhaps with a
    FROM added); its values are the bound parameters of :func:`upsert_params`.
    The one place the user upsert and the flood window are written.
    """
    users = User.__table__
    statement = insert(users)
    rows = rows if rows is not None else new_row()
    statement = statement.from_select([column.name for column in rows.selected_columns], rows)
    in_window = users.c.window_started_at > bindparam("window_opened_after", type_=users.c.window_started_at.type)
    return statement.on_conflict_do_update(index_elements=["id"], set_={
        "username": statement.excluded.username,
        "first_name": statement.excluded.first_name,
        "language_code": statement.excluded.language_code,
        "last_seen_at": statement.excluded.last_seen_at,
        # They wrote to us, so they no longer block the bot: broadcasts reach them again.
        "blocked_at": None,
        "updates_in_window": case((in_window, users.c.updates_in_window + 1), else_=1),
        "window_started_at": case((in_window, users.c.window_started_at), else_=statement.excluded.window_started_at),
    }).returning(users.c.updates_in_window)


def new_row() -> Select:
    """SELECT of a new user's row, made of the bound parameters of :func:`upsert_params`."""
    users = User.__table__

    def bound(param: str, column: str):
        return bindparam(param, type_=users.c[column].type).label(column)

    return select(
        bound("user_id", "id"), bound("username", "username"), bound("first_name", "first_name"),
        bound("language_code", "language_code"), bound("now", "created_at"), bound("now", "last_seen_at"),
        bound("now", "window_started_at"), literal(1, users.c.updates_in_window.type).label("updates_in_window"),
    )


def set_referral_source(session: Session, user_id: int, source: str) -> None:
    """Record where a user came from, the first time only."""
    user = session.get(User, user_id)
    if user is not None and user.referral_source is None:
        user.referral_source = source[:64]


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None
