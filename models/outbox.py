"""The durable outbox: every Bot API call the server owes Telegram.

Handlers insert jobs in the update's own transaction, so a call exists if and
only if the update's effects were committed. Senders claim a job with a lease
(``locked_until``), call Telegram holding no database connection, then record
the outcome; a job whose sender died is claimed again once its lease expires,
or at once when the gunicorn master buries that sender's worker.

Each claim writes a fresh ``claim_token``: every later write of that sender
(progress, outcome, lease renewal) applies only while the row still carries
it, so a sender whose lease was taken over can no longer change the job.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import AutoId, db, utcnow

PENDING = "pending"
DONE = "done"
FAILED = "failed"


class OutboxJob(db.Model):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    # "call" is one Bot API method; other kinds are multi-step domain jobs
    # (e.g. create an invite link, then send it) that keep progress in ``state``.
    kind: Mapped[str] = mapped_column(String(32), default="call")
    # Jobs for one chat are sent in id order, one at a time.
    chat_id: Mapped[int | None]
    payload: Mapped[dict] = mapped_column(JSON)
    state: Mapped[dict | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    # The claim that holds the job: a new random token per claim (the fence),
    # and its owner, "<replica>:<master pid>:<worker pid>", so the master can
    # release the jobs of a worker it has just reaped.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    locked_by: Mapped[str | None] = mapped_column(String(160))
    last_error: Mapped[str | None] = mapped_column(Text)
    source_update_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        # The senders' claim query only ever looks at pending jobs.
        Index(
            "ix_outbox_pending",
            "not_before",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Per-chat pacing looks up the chat's last delivered job.
        Index("ix_outbox_chat_finished", "chat_id", "finished_at"),
        Index(
            "ix_outbox_pending_chat",
            "chat_id",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )
