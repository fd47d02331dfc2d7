"""One-time invite links: made after payment, sent to the payer, guarded at join.

Creating the link and sending it are steps of one outbox job; the link is
saved between them, so a retry (429, timeout, a killed worker) sends the link
it already made rather than a second one. ``member_limit=1`` counts members
at once, so a link opens again when its user leaves: joins are checked, a
stranger using someone else's link is removed, and a link is revoked once its
owner is in.
"""
from __future__ import annotations

import logging
import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.runners import JobContext
from membership import members
from models.base import utcnow
from models.invite import JOINED, PENDING, REVOKED, SENT, Invite

# The outbox job that performs this module's Telegram side (membership.job_runners).
INVITE_JOB = "invite"

log = logging.getLogger(__name__)

LINK_NAME_LIMIT = 32


def queue(session: Session, user_id: int, *, reason: str) -> Invite:
    """Owe ``user_id`` an invite, in the caller's transaction."""
    invite = Invite(user_id=user_id, reason=reason[:255], status=PENDING)
    session.add(invite)
    session.flush()
    jobs.enqueue_job(session, INVITE_JOB, {"invite_id": invite.id, "user_id": user_id}, chat_id=user_id)
    return invite


def run_invite(job, context: JobContext) -> None:
    state = dict(job.state or {})
    if "link" not in state:
        state["link"] = _create_link(context, job.payload)
        context.save_state(state)
        with context.transaction() as session:
            session.execute(update(Invite).where(Invite.id == job.payload["invite_id"]).values(link=state["link"]))
    context.client.call("sendMessage", {
        "chat_id": job.payload["user_id"],
        "text": "Your access is ready. This link lets you in once and expires in "
                f"{context.settings.invite_ttl_hours} hours:\n{state['link']}",
        "reply_markup": {"inline_keyboard": [[{"text": "Join the channel", "url": state["link"]}]]},
    })
    with context.transaction() as session:
        session.execute(update(Invite).where(Invite.id == job.payload["invite_id"], Invite.status == PENDING)
                        .values(status=SENT))


def _create_link(context: JobContext, payload: dict) -> str:
    settings = context.settings
    result = context.client.call("createChatInviteLink", {
        "chat_id": settings.channel_id,
        "name": f"user {payload['user_id']} #{payload['invite_id']}"[:LINK_NAME_LIMIT],
        "member_limit": 1,
        "expire_date": int(time.time()) + settings.invite_ttl_hours * 3600,
    })
    return result["invite_link"]


def on_join(session: Session, user_id: int, link: str | None, channel_id: int) -> str:
    """Someone joined the channel: ``ok``, ``stranger`` (removed unless a member) or ``untracked``.

    Joins not through one of our links (an admin adding someone, the
    channel's own link) are left alone.
    """
    invite = session.scalars(select(Invite).where(Invite.link == link).with_for_update()).first() if link else None
    if invite is None:
        return "untracked"
    if invite.user_id == user_id:
        invite.status = JOINED
        invite.joined_at = utcnow()
        _revoke_link(session, channel_id, link, owner=user_id)
        return "ok"
    if not members.is_active(members.get(session, user_id)):
        log.warning("user %s joined through invite %s of user %s: removing them", user_id, invite.id, invite.user_id)
        members.queue_removal(session, user_id, notice=None)
    if invite.status != JOINED:
        # The link leaked: close it and give its owner a fresh one.
        invite.status = REVOKED
        _revoke_link(session, channel_id, link, owner=invite.user_id)
        queue(session, invite.user_id, reason=f"reissue:{invite.id}")
    return "stranger"


def _revoke_link(session: Session, channel_id: int, link: str, owner: int) -> None:
    jobs.enqueue_call(session, "revokeChatInviteLink", {"chat_id": channel_id, "invite_link": link},
                        chat_id=owner)
