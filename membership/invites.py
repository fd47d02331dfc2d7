"""One-time invite links: made for a member, sent to them, guarded at join.

Creating the link and sending it are steps of one outbox job; the link is
saved with the job's progress in one transaction between them, so a retry
(429, timeout, a killed worker) sends the link it already made rather than a
second one, and no link that was sent is ever untracked. ``member_limit=1``
counts members at once, so a link opens again when its user leaves: joins
are checked, a stranger using someone else's link is removed, and a link is
revoked once its owner is in. Whoever joins without access is removed.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.runners import JobContext
from membership import members, notices
from models.base import utcnow
from models.invite import FAILED, JOINED, PENDING, REVOKED, SENT, Invite
from settings import Settings, current_settings

log = logging.getLogger(__name__)

# The outbox job that performs this module's Telegram side (membership.job_runners).
INVITE_JOB = "invite"

LINK_NAME_LIMIT = 32
# /link hands out at most one fresh link per member in this time.
FRESH_LINK_COOLDOWN = timedelta(minutes=10)
# A lost admin right fails every invite: the admins hear of it once per this.
INVITE_ALERT_EVERY = timedelta(minutes=10)
OUTSTANDING = (PENDING, SENT)


def queue(session: Session, user_id: int, *, reason: str) -> Invite:
    """Owe ``user_id`` an invite, in the caller's transaction."""
    invite = Invite(user_id=user_id, reason=reason[:255], status=PENDING)
    session.add(invite)
    session.flush()
    jobs.enqueue_job(session, INVITE_JOB, {"invite_id": invite.id, "user_id": user_id}, chat_id=user_id)
    return invite


def request_fresh_link(session: Session, user_id: int, now: datetime | None = None) -> str | datetime:
    """/link: ``"queued"``, ``"not_member"``, or the moment the next link may be asked for."""
    now = now or utcnow()
    if not members.is_active(members.get(session, user_id), now):
        return "not_member"
    last = session.scalar(select(Invite.created_at).where(Invite.user_id == user_id, Invite.status != FAILED)
                          .order_by(Invite.created_at.desc()).limit(1))
    if last is not None and now - last < FRESH_LINK_COOLDOWN:
        return last + FRESH_LINK_COOLDOWN
    queue(session, user_id, reason=f"link:{now:%Y%m%dT%H%M%S}")
    return "queued"


def revoke_outstanding(session: Session, settings: Settings, user_id: int) -> int:
    """Close every link of ``user_id`` not yet used (access ended): no late join through one."""
    closed = session.execute(
        update(Invite).where(Invite.user_id == user_id, Invite.status.in_(OUTSTANDING))
        .values(status=REVOKED).returning(Invite.link)
        .execution_options(synchronize_session=False)).scalars().all()
    for link in closed:
        if link:  # a link still to be made is never made: the job sees the invite revoked
            _revoke_link(session, settings.channel_id, link, owner=user_id)
    return len(closed)


def give_up_invite(session: Session, job, reason: str) -> None:
    """Telegram will not make or deliver this invite (refused, or failing for a day): the member
    can ask again with /link, and the admins should know."""
    invite_id, user_id = job.payload["invite_id"], job.payload["user_id"]
    session.execute(update(Invite).where(Invite.id == invite_id, Invite.status == PENDING).values(status=FAILED))
    log.error("invite %s of user %s failed for good: %s", invite_id, user_id, reason)
    notices.alert_admins(session, current_settings(), "invite-failed", (
        f"Telegram refused the invite of user {user_id}: {reason}. Check the bot's admin rights in the channel; "
        f"the member can use /link. Later failures in the next {INVITE_ALERT_EVERY.seconds // 60} minutes "
        "are logged without a message."), at_most_every=INVITE_ALERT_EVERY)


def run_invite(job, context: JobContext) -> None:
    invite_id, user_id = job.payload["invite_id"], job.payload["user_id"]
    state = dict(job.state or {})
    if "link" not in state:
        if not _still_owed(context, invite_id, user_id):
            return
        state["link"] = _create_link(context, job.payload)
        if not _save_link(context, invite_id, user_id, state):
            return
    context.client.call("sendMessage", {
        "chat_id": user_id,
        "text": "Your access is ready. This link lets you in once and expires in "
                f"{context.settings.invite_ttl_hours} hours:\n{state['link']}",
        "reply_markup": {"inline_keyboard": [[{"text": "Join the channel", "url": state["link"]}]]},
    })
    with context.transaction() as session:
        session.execute(update(Invite).where(Invite.id == invite_id, Invite.status == PENDING).values(status=SENT))


def _still_owed(context: JobContext, invite_id: int, user_id: int) -> bool:
    """The invite was not revoked and its user still has access: checked when the job runs."""
    with context.transaction() as session:
        invite = session.get(Invite, invite_id)
        if invite is not None and invite.status == PENDING and members.is_active(members.get(session, user_id)):
            return True
        if invite is not None and invite.status == PENDING:
            invite.status = REVOKED
    log.info("invite %s of user %s not sent: revoked, or access ended before it was made", invite_id, user_id)
    return False


def _save_link(context: JobContext, invite_id: int, user_id: int, state: dict) -> bool:
    """Record the new link with the job's progress, in one transaction.

    If the invite was revoked while the link was being made, the link is
    closed again at once instead of being sent.
    """
    with context.transaction() as session:
        saved = session.execute(update(Invite).where(Invite.id == invite_id, Invite.status == PENDING)
                                .values(link=state["link"]).returning(Invite.id)).first()
        if saved is None:
            _revoke_link(session, context.settings.channel_id, state["link"], owner=user_id)
        context.save_state(state, session=session)
    return saved is not None


def _create_link(context: JobContext, payload: dict) -> str:
    settings = context.settings
    result = context.client.call("createChatInviteLink", {
        "chat_id": settings.channel_id,
        "name": f"user {payload['user_id']} #{payload['invite_id']}"[:LINK_NAME_LIMIT],
        "member_limit": 1,
        "expire_date": int(time.time()) + settings.invite_ttl_hours * 3600,
    })
    return result["invite_link"]


def on_join(session: Session, settings: Settings, user_id: int, link: str | None) -> str:
    """Someone joined the channel: ``ok``, ``no_access`` (removed), ``stranger`` or ``spared``.

    Whoever joins without access is removed and told why, through our links
    or any other, except the ids in NEVER_REMOVE_IDS and the admins.
    """
    invite = session.scalars(select(Invite).where(Invite.link == link).with_for_update()).first() if link else None
    if invite is not None and invite.user_id != user_id:
        _stranger_joined(session, settings, invite, user_id)
        return "stranger"
    has_access = members.is_active(members.get(session, user_id))
    if invite is not None:
        invite.status = JOINED if has_access else REVOKED
        invite.joined_at = utcnow()
        _revoke_link(session, settings.channel_id, link, owner=user_id)
    if has_access:
        return "ok"
    if user_id in settings.never_remove_ids or user_id in settings.admin_ids:
        return "spared"
    log.warning("user %s joined the channel without access: removing them", user_id)
    members.queue_removal(session, user_id, notice=(
        "You joined the channel, but you have no active membership, so you have been removed. "
        "Use /plans to get access."))
    return "no_access"


def _stranger_joined(session: Session, settings: Settings, invite: Invite, user_id: int) -> None:
    """Someone used another member's link: out they go (unless a member), and the link is replaced."""
    if not members.is_active(members.get(session, user_id)) and user_id not in settings.never_remove_ids:
        log.warning("user %s joined through invite %s of user %s: removing them", user_id, invite.id, invite.user_id)
        members.queue_removal(session, user_id, notice=None)
    if invite.status != JOINED:
        invite.status = REVOKED
        _revoke_link(session, settings.channel_id, invite.link, owner=invite.user_id)
        if members.is_active(members.get(session, invite.user_id)):
            queue(session, invite.user_id, reason=f"reissue:{invite.id}")


def _revoke_link(session: Session, channel_id: int, link: str, owner: int) -> None:
    jobs.enqueue_call(session, "revokeChatInviteLink", {"chat_id": channel_id, "invite_link": link},
                      chat_id=owner)
