"""``flask --app main broadcast``: queue an owner's message for an audience, then follow it.

Nothing is sent from here. Each recipient gets a row and, in the same
transaction, an outbox job (``membership.broadcasts``) that the running
server's senders deliver at Telegram's shared pace, one chat at a time. The
(broadcast, user) row is unique and inserted with ON CONFLICT DO NOTHING, so
queueing again (``--resume``, after Ctrl-C, a crash or a lost connection)
queues only those who have no row yet: nobody gets the message twice.
Queueing commits per chunk, and following polls in short transactions, so
no connection is held across a wait.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot_outbox.jobs import enqueue_job
from membership.broadcasts import BROADCAST_JOB, job_payload
from models.base import utcnow
from models.broadcast import ACTIVE, ALL, EXPIRED, FAILED, QUEUED, SENT, Broadcast, BroadcastRecipient
from models.membership import Membership
from models.user import User

CHUNK = 500
MAX_TEXT = 4096  # Telegram's limit for one message


class BroadcastError(Exception):
    """Something the operator must fix: told in one line."""


def create(session: Session, text: str, audience: str) -> Broadcast:
    if not text.strip() or len(text) > MAX_TEXT:
        raise BroadcastError(f"the text must be 1-{MAX_TEXT} characters")
    broadcast = Broadcast(text=text, audience=audience)
    session.add(broadcast)
    session.flush()
    return broadcast


def find_to_resume(session: Session, broadcast_id: int | None, text: str | None, audience: str) -> Broadcast:
    """The broadcast named by id, else the latest one with this text and audience."""
    if broadcast_id is not None:
        broadcast = session.get(Broadcast, broadcast_id)
        if broadcast is None:
            raise BroadcastError(f"no broadcast {broadcast_id}")
        return broadcast
    broadcast = session.scalars(select(Broadcast).where(Broadcast.text == text, Broadcast.audience == audience)
                                .order_by(Broadcast.id.desc()).limit(1)).first()
    if broadcast is None:
        raise BroadcastError(f"no earlier broadcast to {audience} with this text; run it without --resume")
    return broadcast


def audience_ids(audience: str, after: int, limit: int):
    """The next ``limit`` user ids of the audience above ``after``, minus users who blocked the bot."""
    now = utcnow()
    query = select(User.id).where(User.id > after, User.blocked_at.is_(None))
    active = exists().where(Membership.user_id == User.id, Membership.expires_at > now)
    had = exists().where(Membership.user_id == User.id)
    if audience == ACTIVE:
        query = query.where(active)
    elif audience == EXPIRED:
        query = query.where(had, ~active)
    elif audience != ALL:
        raise BroadcastError(f"unknown audience {audience!r}")
    return query.order_by(User.id).limit(limit)


def queue_chunk(session: Session, broadcast: Broadcast, after: int, limit: int = CHUNK) -> tuple[int, int | None]:
    """Queue the next chunk of the audience: (how many were newly queued, the cursor for the next chunk).

    The cursor is None once the audience is exhausted. Users who already have
    a row (queued by an earlier run) are skipped by the unique key.
    """
    ids = list(session.scalars(audience_ids(broadcast.audience, after, limit)))
    if not ids:
        return 0, None
    now = utcnow()
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)
    statement = (insert(BroadcastRecipient)
                 .values([{"broadcast_id": broadcast.id, "user_id": user_id, "status": QUEUED, "queued_at": now}
                          for user_id in ids])
                 .on_conflict_do_nothing(index_elements=["broadcast_id", "user_id"])
                 .returning(BroadcastRecipient.user_id))
    new = list(session.scalars(statement))
    for user_id in new:
        # chat_id: per-chat order and the chat interval apply, as for any message to this user.
        enqueue_job(session, BROADCAST_JOB, job_payload(broadcast.id, user_id, broadcast.text), chat_id=user_id)
    return len(new), ids[-1]


def queue_all(session: Session, broadcast: Broadcast, chunk: int = CHUNK) -> int:
    """Queue every recipient not yet queued, committing per chunk; how many were newly queued."""
    queued, cursor = 0, 0
    while cursor is not None:
        added, cursor = queue_chunk(session, broadcast, cursor, chunk)
        session.commit()
        queued += added
    return queued


@dataclass(frozen=True)
class Progress:
    total: int
    sent: int
    failed: int

    @property
    def finished(self) -> int:
        return self.sent + self.failed

    @property
    def done(self) -> bool:
        return self.finished >= self.total


def progress(session: Session, broadcast_id: int) -> Progress:
    counts = dict(session.execute(select(BroadcastRecipient.status, func.count())
                                  .where(BroadcastRecipient.broadcast_id == broadcast_id)
                                  .group_by(BroadcastRecipient.status)).all())
    return Progress(total=sum(counts.values()), sent=counts.get(SENT, 0), failed=counts.get(FAILED, 0))


def progress_line(now: Progress, rate: float | None, width: int = 30) -> str:
    """``[#####-----] 120/400 sent 118 failed 2  22.1/s  ETA 0:13``."""
    filled = int(width * now.finished / now.total) if now.total else width
    eta = "--:--" if not rate else _duration((now.total - now.finished) / rate)
    speed = f"{rate:.1f}/s" if rate is not None else "-/s"
    return (f"[{'#' * filled}{'-' * (width - filled)}] {now.finished}/{now.total} "
            f"sent {now.sent} failed {now.failed}  {speed}  ETA {eta}")


class Stalled(Exception):
    """No recipient settled for too long: the server's senders are probably not running."""


def follow(read: Callable[[], Progress], show: Callable[[Progress, float | None], None], *,
           poll_seconds: float = 1.0, stall_seconds: float = 120.0,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Progress:
    """Poll ``read`` until every recipient is sent or failed, showing each reading with its rate.

    ``read`` opens and ends its own transaction: nothing is held while sleeping.
    Raises Stalled when nothing settles for ``stall_seconds``.
    """
    started, first = clock(), read()
    last_change, last_finished = started, first.finished
    current = first
    while True:
        elapsed = clock() - started
        rate = (current.finished - first.finished) / elapsed if elapsed > 0 and current.finished > first.finished \
            else None
        show(current, rate)
        if current.done:
            return current
        if clock() - last_change > stall_seconds:
            raise Stalled(f"nothing delivered for {stall_seconds:.0f}s: is the server running?")
        sleep(poll_seconds)
        current = read()
        if current.finished != last_finished:
            last_change, last_finished = clock(), current.finished


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
