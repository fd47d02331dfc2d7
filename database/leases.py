"""Named leases: one holder at a time across workers and replicas (``models.lease``).

Taken and given back in short transactions of their own, never held across
a network call's transaction: a holder that dies simply lets the lease run
out. A row rather than ``pg_advisory_lock``, which behind a transaction-mode
PgBouncer would lock a connection some other client then gets.
"""
from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.orm import Session

from database.upsert import insert_for
from models.base import utcnow
from models.lease import Lease


def holder_id() -> str:
    """Unique to this process and this attempt, readable in the table: host, pid and a nonce."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(session: Session, name: str, holder: str, ttl: timedelta, now: datetime | None = None) -> bool:
    """Take (or extend) the lease ``name`` for ``holder``; False if someone else holds it."""
    now = now or utcnow()
    inserted = session.execute(
        insert_for(session, Lease).values(name=name, holder=holder, expires_at=now + ttl)
        .on_conflict_do_nothing(index_elements=["name"]).returning(Lease.name)).first()
    if inserted is not None:
        return True
    taken = session.execute(
        update(Lease).where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at <= now))
        .values(holder=holder, expires_at=now + ttl).returning(Lease.name)
        .execution_options(synchronize_session=False)).first()
    return taken is not None


def release(session: Session, name: str, holder: str) -> None:
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder)
                    .execution_options(synchronize_session=False))
