"""What the sandbox's admin view reads from the database: the server's side of the story.

Plain reads, newest first and bounded, shaped for the page. The page puts
them beside Telegram's side (the emulator's chats and channel), so a person
can watch an update become a payment, a membership, outbox jobs and an
invite, and a sweep become reminders and removals.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot_outbox.jobs import CALL
from models.dead_letter import DeadLetter
from models.invite import Invite
from models.membership import Membership
from models.outbox import OutboxJob
from models.payment import Payment
from models.processed_update import ProcessedUpdate
from models.user import User

ROWS = 25


def snapshot(session: Session) -> dict:
    names = dict(session.execute(select(User.id, User.first_name)).all())
    return {
        "members": [_member(row, names) for row in session.scalars(
            select(Membership).order_by(Membership.expires_at.desc()).limit(ROWS))],
        "payments": [_payment(row, names) for row in session.scalars(
            select(Payment).order_by(Payment.created_at.desc()).limit(ROWS))],
        "invites": [_invite(row, names) for row in session.scalars(
            select(Invite).order_by(Invite.id.desc()).limit(ROWS))],
        "outbox": [_job(row) for row in session.scalars(select(OutboxJob).order_by(OutboxJob.id.desc()).limit(ROWS))],
        "dead_letters": [_dead_letter(row) for row in session.scalars(
            select(DeadLetter).order_by(DeadLetter.id.desc()).limit(ROWS))],
        "updates": [_update(row) for row in session.scalars(
            select(ProcessedUpdate).order_by(ProcessedUpdate.update_id.desc()).limit(ROWS))],
    }


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _member(row: Membership, names: dict[int, str]) -> dict:
    return {"user_id": row.user_id, "name": names.get(row.user_id, ""), "expires_at": _when(row.expires_at),
            "reminded": row.reminded_for is not None and row.reminded_for == row.expires_at,
            "removed": row.removed_for is not None and row.removed_for == row.expires_at}


def _payment(row: Payment, names: dict[int, str]) -> dict:
    return {"charge_id": row.charge_id, "user_id": row.user_id, "name": names.get(row.user_id, ""),
            "plan_id": row.plan_id, "stars": row.stars, "is_recurring": row.is_recurring, "status": row.status,
            "source": row.source, "created_at": _when(row.created_at), "refunded_at": _when(row.refunded_at)}


def _invite(row: Invite, names: dict[int, str]) -> dict:
    return {"id": row.id, "user_id": row.user_id, "name": names.get(row.user_id, ""), "link": row.link,
            "status": row.status, "created_at": _when(row.created_at)}


def _job(row: OutboxJob) -> dict:
    what = row.payload.get("method") if row.kind == CALL else row.kind
    return {"id": row.id, "what": what, "chat_id": row.chat_id, "status": row.status, "attempts": row.attempts,
            "last_error": row.last_error, "created_at": _when(row.created_at), "finished_at": _when(row.finished_at)}


def _dead_letter(row: DeadLetter) -> dict:
    return {"id": row.id, "update_id": row.update_id, "error": row.error, "created_at": _when(row.created_at)}


def _update(row: ProcessedUpdate) -> dict:
    return {"update_id": row.update_id, "kind": row.kind, "processed_at": _when(row.processed_at)}
