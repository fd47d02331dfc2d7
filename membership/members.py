"""Members: who has access now, and removing someone from the channel.

Access itself is derived from the entitlement ledger
(``membership.entitlements``); this module reads the cached expiry. Removing
someone is an outbox job (``remove_member``): the decision is committed with
the change that caused it, the Telegram calls follow, and the job checks
again when it runs, so a member who paid in between is not removed.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.client import TelegramError
from bot_outbox.runners import JobContext
from database.background import background_session
from models.base import utcnow
from models.membership import Membership

log = logging.getLogger(__name__)

# The outbox job that performs this module's Telegram side (membership.job_runners).
REMOVAL_JOB = "remove_member"

# Telegram's answers to removing someone who is not (or no longer) there.
ALREADY_GONE = ("user not found", "participant_id_invalid", "user_not_participant", "not a member",
                "member not found")


def get(session: Session, user_id: int) -> Membership | None:
    return session.get(Membership, user_id)


def is_active(record: Membership | None, now: datetime | None = None) -> bool:
    return record is not None and record.expires_at > (now or utcnow())


def set_in_channel(session: Session, user_id: int, present: bool) -> None:
    """What the last chat_member update said; kept only for people with a membership."""
    record = get(session, user_id)
    if record is not None:
        record.in_channel = present


def queue_removal(session: Session, user_id: int, *, notice: str | None) -> None:
    """Remove from the channel (so they can pay and come back), then tell them why.

    The job remembers the expiry it was decided on: if that has moved on by
    the time it runs (a payment, a grant), the member stays.
    """
    record = get(session, user_id)
    decided_on = record.expires_at.isoformat() if record is not None else None
    jobs.enqueue_job(session, REMOVAL_JOB, {"user_id": user_id, "expires_at": decided_on}, chat_id=user_id)
    if notice:
        jobs.enqueue_call(session, "sendMessage", {"chat_id": user_id, "text": notice}, chat_id=user_id)


def run_removal(job, context: JobContext) -> None:
    """banChatMember then unbanChatMember: out of the channel, free to rejoin after paying.

    Checked again now: someone who paid (or was granted access) since the
    removal was queued stays.
    """
    channel_id = context.settings.channel_id
    user_id = job.payload["user_id"]
    if _access_changed_since(context, user_id, job.payload.get("expires_at")):
        log.info("removal of user %s skipped: they have access again", user_id)
        return
    try:
        context.client.call("banChatMember", {"chat_id": channel_id, "user_id": user_id})
    except TelegramError as error:
        if not (error.code == 400 and _already_gone(error.description)):
            raise
    context.client.call("unbanChatMember", {"chat_id": channel_id, "user_id": user_id, "only_if_banned": True})


def _already_gone(description: str) -> bool:
    lowered = description.lower()
    return any(marker in lowered for marker in ALREADY_GONE)


def _access_changed_since(context: JobContext, user_id: int, decided_on: str | None) -> bool:
    """Access was extended after the removal was decided (or given to someone who had none)."""
    with background_session(context.app, context.slots) as session:
        record = get(session, user_id)
        if record is None:
            return False
        if decided_on is None:
            return is_active(record)
        return record.expires_at > datetime.fromisoformat(decided_on)
