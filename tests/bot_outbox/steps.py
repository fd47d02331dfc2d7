"""The outbox tests' steps: jobs queued and claimed as senders do, rows read back, and a sender
with runners of the test's own (built as main.register_workers builds one)."""
from __future__ import annotations

from datetime import timedelta
from typing import Mapping

from bot_outbox import jobs
from bot_outbox.jobs import ClaimedJob
from bot_outbox.runners import RunnerEntry
from bot_outbox.sender import OutboxSender
from models.base import db, utcnow
from models.outbox import OutboxJob
from settings import settings_of

SHORT = timedelta(seconds=1)


def queue(app, chat_id: int | None = None, *, kind: str = "test", payload: dict | None = None,
          age: timedelta = timedelta(0)) -> int:
    """Commit one job of ``kind`` (created ``age`` ago), as a handler's transaction does, and wake the senders."""
    with app.app_context():
        job = jobs.enqueue_job(db.session, kind, payload or {}, chat_id=chat_id)
        db.session.flush()
        job.created_at = job.created_at - age
        db.session.commit()
        job_id = job.id
    app.extensions["outbox_sender"].notify()
    return job_id


def claim(app, *, after: timedelta = timedelta(0), lease: timedelta = SHORT, owner: str = "test") -> ClaimedJob:
    """Claim as a sender would, ``after`` from now (a later sender sees the earlier lease expired)."""
    with app.app_context():
        claimed = jobs.claim_next(db.session, now=utcnow() + after, lease=lease, owner=owner)
        db.session.commit()
    assert claimed is not None
    return claimed


def write(app, change) -> bool:
    """One settle transaction: ``change(session)`` and commit; whether the change applied."""
    with app.app_context():
        applied = change(db.session)
        db.session.commit()
        return applied


def row(app, job_id: int) -> OutboxJob:
    with app.app_context():
        return db.session.get(OutboxJob, job_id)


def start_sender(app, runners: Mapping[str, RunnerEntry]) -> OutboxSender:
    """Replace the app's sender (never started) with one running ``runners``; lifecycle.shutdown stops it."""
    settings = settings_of(app)
    sender = OutboxSender(
        app, app.extensions["telegram_client"], app.extensions["background_slots"], runners,
        threads=2, poll_seconds=0.2, lease=timedelta(seconds=settings.outbox_lease_seconds),
        heartbeat=settings.outbox_heartbeat_seconds, max_hold=settings.outbox_runner_seconds,
        replica=settings.replica_id)
    app.extensions["outbox_sender"] = sender
    sender.start()
    return sender
