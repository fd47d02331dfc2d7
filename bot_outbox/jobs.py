"""The outbox's database side: enqueue in the caller's transaction, claim with a lease, settle.

Every function takes the session and leaves the commit to its caller, so the
transaction boundary stays visible where the work is done.

A claim is fenced: it writes a fresh token, and every later write for that
claim (progress, outcome, renewal) applies only while the row still carries
the token and is pending. Each reports whether it applied; False means
another sender holds the job now, and this one must leave it alone.
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from models.base import utcnow
from models.outbox import DONE, FAILED, PENDING, OutboxJob

LEASE = timedelta(seconds=10)  # renewed by the sender's heartbeat while the job runs (bot_outbox.leases)
GIVE_UP_AFTER = timedelta(hours=24)  # Telegram itself forgets updates after a day
MAX_BACKOFF_SECONDS = 300
ENQUEUED = "outbox_enqueued"  # key in Session.info
CALL = "call"  # the job kind of one plain Bot API call
# A released job is claimable at once, and no earlier claim's writes apply to it.
_RELEASED = dict(locked_until=None, claim_token=None, locked_by=None)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    chat_id: int | None
    payload: dict
    state: dict | None
    attempts: int
    created_at: datetime
    claim_token: str  # this claim's fence: see _held_by


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
               chat_interval: timedelta = timedelta(0), owner: str | None = None) -> ClaimedJob | None:
    """Lease the oldest due job whose chat has no earlier pending job, under a new claim token.

    One UPDATE ... RETURNING over a ``FOR UPDATE SKIP LOCKED`` subquery, so
    concurrent senders in any worker or replica never claim the same job.
    A chat also waits ``chat_interval`` after its last delivered job:
    Telegram allows about one message a second per chat. ``owner`` names the
    claiming process, so its leases can be released when it dies.
    """
    now = now or utcnow()
    row = session.execute(_claim_statement(), {
        "now": now, "sent_after": now - chat_interval, "locked_until": now + lease,
        "claim_token": uuid.uuid4().hex, "owner": owner,
    }).first()
    return ClaimedJob(*row) if row else None


@cache
def _claim_statement():
    """Built once, with bound parameters: senders poll with it, and building it anew (two
    aliased classes, two EXISTS subqueries) cost more CPU than running it."""
    earlier, sent = aliased(OutboxJob), aliased(OutboxJob)
    now = bindparam("now", type_=OutboxJob.not_before.type)
    earlier_pending_in_chat = exists().where(
        earlier.status == PENDING, earlier.chat_id == OutboxJob.chat_id, earlier.id < OutboxJob.id
    )
    sent_recently_to_chat = exists().where(
        sent.chat_id == OutboxJob.chat_id, sent.status == DONE,
        sent.finished_at > bindparam("sent_after", type_=OutboxJob.finished_at.type),
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
    return (
        update(OutboxJob)
        .where(OutboxJob.id == candidate)
        .values(locked_until=bindparam("locked_until", type_=OutboxJob.locked_until.type),
                attempts=OutboxJob.attempts + 1, claim_token=bindparam("claim_token"), locked_by=bindparam("owner"))
        .returning(OutboxJob.id, OutboxJob.kind, OutboxJob.chat_id, OutboxJob.payload,
                   OutboxJob.state, OutboxJob.attempts, OutboxJob.created_at, OutboxJob.claim_token)
        .execution_options(synchronize_session=False)
    )


def lock_if_held(session: Session, job: ClaimedJob) -> bool:
    """Lock the job's row for this transaction if ``job``'s claim still holds it.

    While the lock is held nobody can claim the job (claims skip locked
    rows), so whatever else the transaction writes commits together with
    the job's own progress, under this claim, or not at all.
    """
    return session.execute(select(OutboxJob.id).where(_held_by(job)).with_for_update()).first() is not None


def save_state(session: Session, job: ClaimedJob, state: dict) -> bool:
    """Record a multi-step job's progress so a retry resumes instead of redoing."""
    return _write(session, job, state=state)


def mark_done(session: Session, job: ClaimedJob) -> bool:
    return _write(session, job, status=DONE, finished_at=utcnow(), locked_until=None, last_error=None)


def mark_failed(session: Session, job: ClaimedJob, error: str) -> bool:
    return _write(session, job, status=FAILED, finished_at=utcnow(), locked_until=None, last_error=error[:2000])


def past_retrying(job: ClaimedJob, now: datetime | None = None) -> bool:
    """Older than a day: a failure now fails the job for good instead of rescheduling it."""
    return (now or utcnow()) - job.created_at > GIVE_UP_AFTER


def reschedule(session: Session, job: ClaimedJob, error: str, *, retry_after: float | None = None) -> bool:
    """Try again later, under whichever claim comes next: this one lets the job go."""
    delay = retry_after if retry_after is not None else backoff_seconds(job.attempts)
    return _write(session, job, not_before=utcnow() + timedelta(seconds=delay), last_error=error[:2000],
                  **_RELEASED)


def renew(session: Session, claims: list[ClaimedJob], lease: timedelta, now: datetime | None = None) -> set[int]:
    """Extend the leases of the claims that still hold their jobs: the ids renewed.

    One statement for all of a worker's running jobs (the heartbeat).
    """
    if not claims:
        return set()
    now = now or utcnow()
    renewed = session.execute(
        update(OutboxJob).where(or_(*(_held_by(claim) for claim in claims))).values(locked_until=now + lease)
        .returning(OutboxJob.id).execution_options(synchronize_session=False)
    ).scalars()
    return set(renewed)


def release_owner(session: Session, owner: str) -> int:
    """Let go of every pending job ``owner`` holds: for a process known to be dead."""
    result = session.execute(
        update(OutboxJob).where(OutboxJob.status == PENDING, OutboxJob.locked_by == owner).values(**_RELEASED)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


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


def _held_by(job: ClaimedJob):
    """The row is still ``job``'s claim: pending, with its token.

    The attempt count must match too: every claim increments it, including
    a claim by a worker of the previous release during a rolling deploy,
    which knows nothing of tokens and leaves the old one in place.
    """
    if not job.claim_token:
        raise ValueError(f"outbox job {job.id} has no claim token: only claim_next makes a ClaimedJob")
    return and_(OutboxJob.id == job.id, OutboxJob.status == PENDING,
                OutboxJob.claim_token == job.claim_token, OutboxJob.attempts == job.attempts)


def _write(session: Session, job: ClaimedJob, **values) -> bool:
    """Apply ``values`` if ``job``'s claim still holds the row; whether it did."""
    result = session.execute(update(OutboxJob).where(_held_by(job)).values(**values)
                             .execution_options(synchronize_session=False))
    return result.rowcount == 1
