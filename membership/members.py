"""Memberships: extend on payment or grant, revoke on refund, report status.

Removing someone from the channel is an outbox job (``remove_member``): the
decision is committed with the membership change, the Telegram calls follow.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.client import TelegramError
from bot_outbox.runners import JobContext
from database.upsert import insert_for
from models.base import utcnow
from models.membership import Membership

# The outbox job that performs this module's Telegram side (membership.job_runners).
REMOVAL_JOB = "remove_member"

# Telegram's answers to removing someone who is not (or no longer) there.
ALREADY_GONE = ("user not found", "participant_id_invalid", "user_not_participant", "not a member",
                "member not found")


def get(session: Session, user_id: int) -> Membership | None:
    return session.get(Membership, user_id)


def is_active(record: Membership | None, now: datetime | None = None) -> bool:
    return record is not None and record.expires_at > (now or utcnow())


def extend(session: Session, user_id: int, *, days: int, now: datetime | None = None,
           at_least_until: datetime | None = None) -> Membership:
    """Add ``days`` from the later of now and the current expiry (never shortens)."""
    now = now or utcnow()
    session.execute(
        insert_for(session, Membership).values(user_id=user_id, expires_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    record = session.get(Membership, user_id, with_for_update=True, populate_existing=True)
    expires = max(record.expires_at, now) + timedelta(days=days)
    if at_least_until is not None:
        expires = max(expires, at_least_until)
    record.expires_at = expires
    record.updated_at = now
    session.flush()
    return record


def revoke(session: Session, user_id: int, *, now: datetime | None = None, notice: str | None = None) -> bool:
    """End access now and queue the removal from the channel; False if not a member."""
    now = now or utcnow()
    record = session.get(Membership, user_id, with_for_update=True, populate_existing=True)
    if record is None:
        return False
    if record.expires_at > now:
        record.expires_at = now
    record.removed_for = record.expires_at
    record.updated_at = now
    queue_removal(session, user_id, notice=notice)
    return True


def queue_removal(session: Session, user_id: int, *, notice: str | None) -> None:
    """Remove from the channel (so they can pay and come back), then tell them why."""
    jobs.enqueue_job(session, REMOVAL_JOB, {"user_id": user_id}, chat_id=user_id)
    if notice:
        jobs.enqueue_call(session, "sendMessage", {"chat_id": user_id, "text": notice}, chat_id=user_id)


def run_removal(job, context: JobContext) -> None:
    """banChatMember then unbanChatMember: out of the channel, free to rejoin after paying."""
    channel_id = context.settings.channel_id
    user_id = job.payload["user_id"]
    try:
        context.client.call("banChatMember", {"chat_id": channel_id, "user_id": user_id})
    except TelegramError as error:
        if not (error.code == 400 and _already_gone(error.description)):
            raise
    context.client.call("unbanChatMember", {"chat_id": channel_id, "user_id": user_id, "only_if_banned": True})


def _already_gone(description: str) -> bool:
    lowered = description.lower()
    return any(marker in lowered for marker in ALREADY_GONE)
