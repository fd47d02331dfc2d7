"""The outbox's database side: enqueue in the caller's transaction, claim with a lease, settle.

Every function takes the session and leaves the commit to its caller, so the
transaction boundary stays visible where the work is done.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from models.base import utcnow
from models.outbox import DONE, FAILED, PENDING, OutboxJob

LEASE = timedelta(seconds=60)  # longer than any call's connect + read timeout
GIVE_UP_AFTER = timedelta(hours=24)  # Telegram itself forgets updates after a day
MAX_BACKOFF_SECONDS = 300
ENQUEUED = "outbox_enqueued"  # key in Session.info
CALL = "call"  # the job kind of one plain Bot API call


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    chat_id: int | None
    payload: dict
    state: dict | None
    attempts: int
    created_at: datetime


def enqueue_call(session: Session, method: str, params: dict, *, chat_id: int | None = None,
                 source_update_id: int | None = None) -> OutboxJob:
    return enqueue_job(session, CALL, {"method": method, "params": params},
                       chat_id=chat_id, source_update_id=source_update_id)


def enqueue_job(session: Session, kind: str, payload: dict, *, chat_id: int | None = None,
                source_update_id: int | None = None, not_before: datetime | None = None) -> OutboxJob:
    job = OutboxJob(kind=kind, payload=payload, chat_id=chat_id, source_update_id=source_update_id,
                    status=PENDING, not_before=not_before or utcnow())
    session.add(job)
    session.info[ENQUEUED] = session.info.get(ENQUEUED, 0) + 1
    return job


def take_enqueued_count(session: Session) -> int:
    """Jobs this session queued since the last call: after commit, wake that many senders."""
    return session.info.pop(ENQUEUED, 0)


def claim_next(session: Session, now: datetime | None = None, lease: timedelta = LEASE,
               chat_interval: timedelta = timedelta(0)) -> ClaimedJob | None:
    """Lease the oldest due job whose chat has no earlier pending job.

    One UPDATE ... RETURNING over a ``FOR UPDATE SKIP LOCKED`` subquery, so
    concurrent senders in any worker or replica never claim the same job.
    A chat also waits ``chat_interval`` after its last delivered job:
    Telegram allows about one message a second per chat.
    """
    now = now or utcnow()
    earlier, sent = aliased(OutboxJob), aliased(OutboxJob)
    earlier_pending_in_chat = exists().where(
        earlier.status == PENDING, earlier.chat_id == OutboxJob.chat_id, earlier.id < OutboxJob.id
    )
    sent_recently_to_chat = exists().where(
        sent.chat_id == OutboxJob.chat_id, sent.status == DONE, sent.finished_at > now - chat_interval
    )
    candidate = (
        select(OutboxJob.id)
        .where(
            OutboxJob.status == PENDING,
            OutboxJob.not_before <= now,
            or_(OutboxJob.locked_until.is_(None), OutboxJob.locked_until < now),
            or_(OutboxJob.chat_id.is_(None), and_(~earlier_pending_in_chat, ~sent_recently_to_chat)),
        )
        .order_by(OutboxJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    row = session.execute(
        update(OutboxJob)
        .where(OutboxJob.id == candidate)
        .values(locked_until=now + lease, attempts=OutboxJob.attempts + 1)
        .returning(OutboxJob.id, OutboxJob.kind, OutboxJob.chat_id, OutboxJob.payload,
                   OutboxJob.state, OutboxJob.attempts, OutboxJob.created_at)
        .execution_options(synchronize_session=False)
    ).first()
    return ClaimedJob(*row) if row else None


def save_state(session: Session, job_id: int, state: dict) -> None:
    """Record a multi-step job's progress so a retry resumes instead of redoing."""
    session.execute(update(OutboxJob).where(OutboxJob.id == job_id).values(state=state)
                    .execution_options(synchronize_session=False))


def mark_done(session: Session, job_id: int) -> None:
    _settle(session, job_id, status=DONE, finished_at=utcnow(), locked_until=None, last_error=None)


def mark_failed(session: Session, job_id: int, error: str) -> None:
    _settle(session, job_id, status=FAILED, finished_at=utcnow(), locked_until=None, last_error=error[:2000])


def reschedule(session: Session, job: ClaimedJob, error: str, *, retry_after: float | None = None) -> bool:
    """Try again later; gives up (returns False) once the job is older than a day."""
    now = utcnow()
    if now - job.created_at > GIVE_UP_AFTER:
        mark_failed(session, job.id, f"gave up after {job.attempts} attempts: {error}")
        return False
    delay = retry_after if retry_after is not None else backoff_seconds(job.attempts)
    _settle(session, job.id, not_before=now + timedelta(seconds=delay), locked_until=None, last_error=error[:2000])
    return True


def backoff_seconds(attempts: int) -> float:
    """Exponential with full jitter, so retries from many jobs do not arrive together."""
    ceiling = min(MAX_BACKOFF_SECONDS, 2 ** min(attempts, 16))
    return random.uniform(ceiling / 2, ceiling)


def prune_finished(session: Session, older_than: timedelta = timedelta(days=7)) -> int:
    """Delivered and abandoned jobs are history after a week."""
    cutoff = utcnow() - older_than
    result = session.execute(delete(OutboxJob).where(OutboxJob.status != PENDING, OutboxJob.finished_at < cutoff))
    return result.rowcount or 0


def pending_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OutboxJob).where(OutboxJob.status == PENDING))


def _settle(session: Session, job_id: int, **values) -> None:
    session.execute(
        update(OutboxJob).where(and_(OutboxJob.id == job_id, OutboxJob.status == PENDING)).values(**values)
        .execution_options(synchronize_session=False)
    )
