"""Access follows the money: a member's expiry is derived from the entitlement ledger.

Every event that gives or takes access adds one row (``models.entitlement``)
and derives the expiry again from all of the member's rows, in the order
they took effect, in the same transaction:

- a paid charge or a grant adds its days to the later of the moment it took
  effect and the expiry so far (a Stars subscription lasts at least until
  the date Telegram gives);
- a refund takes back the days of the charge it refunds, and no more, but
  never past the moment of the refund (access already enjoyed is not
  "given back");
- a revocation ends access at its moment; later payments start afresh.

The membership row is locked first (``SELECT ... FOR UPDATE``), so two
transactions changing one member's access take turns, and the second one
derives the expiry from the first one's row as well. The cached
``memberships.expires_at`` is what every access decision reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from database.upsert import insert_for
from models.base import utcnow
from models.entitlement import GIVING, REFUND, REVOKE, Entitlement
from models.membership import Membership


@dataclass(frozen=True)
class AccessChange:
    """A member's access before and after one entitlement row."""

    user_id: int
    before: datetime | None  # None: no membership row before
    after: datetime
    at: datetime

    @property
    def was_active(self) -> bool:
        return self.before is not None and self.before > self.at

    @property
    def is_active(self) -> bool:
        return self.after > self.at

    @property
    def ended(self) -> bool:
        """Access the member had is gone now."""
        return self.was_active and not self.is_active


def fold(rows: Iterable[Entitlement]) -> datetime | None:
    """The expiry the rows add up to, in order (None: nothing ever gave access)."""
    expiry: datetime | None = None
    for row in rows:
        if row.kind in GIVING:
            start = max(expiry, row.effective_at) if expiry else row.effective_at
            expiry = start + timedelta(days=row.days)
            if row.until is not None:
                expiry = max(expiry, row.until)
        elif row.kind == REFUND and expiry is not None:
            expiry = max(expiry - timedelta(days=row.days), min(expiry, row.effective_at))
        elif row.kind == REVOKE and expiry is not None:
            expiry = min(expiry, row.effective_at)
    return expiry


def add(session: Session, user_id: int, kind: str, *, effective_at: datetime | None = None, days: int = 0,
        until: datetime | None = None, charge_id: str | None = None, note: str | None = None,
        now: datetime | None = None) -> AccessChange | None:
    """Add one row and derive the member's expiry again; None if this charge's row exists already.

    Only rows that give access create a membership; a refund or revocation
    for someone who never had one is recorded and changes nothing.
    """
    now = now or utcnow()
    record, before = _lock_membership(session, user_id, create=kind in GIVING, now=now)
    if not _insert_row(session, user_id, kind, effective_at=effective_at or now, days=days, until=until,
                       charge_id=charge_id, note=note, now=now):
        return None
    if record is None:
        return None
    after = fold(rows_of(session, user_id))
    record.expires_at = after if after is not None else min(record.expires_at, now)
    record.updated_at = now
    session.flush()
    return AccessChange(user_id, before, record.expires_at, now)


def rows_of(session: Session, user_id: int) -> list[Entitlement]:
    return list(session.scalars(
        select(Entitlement).where(Entitlement.user_id == user_id)
        .order_by(Entitlement.effective_at, Entitlement.id)))


def has_row(session: Session, kind: str, charge_id: str) -> bool:
    return session.scalar(select(Entitlement.id).where(Entitlement.kind == kind,
                                                       Entitlement.charge_id == charge_id)) is not None


def days_paid_by(session: Session, charge_id: str) -> int | None:
    """The days a charge bought, as recorded when it was credited (None: never credited)."""
    return session.scalar(select(Entitlement.days).where(Entitlement.kind.in_(GIVING),
                                                         Entitlement.charge_id == charge_id))


def _lock_membership(session: Session, user_id: int, *, create: bool,
                     now: datetime) -> tuple[Membership | None, datetime | None]:
    """The member's row, locked, and their expiry before this change (None: no row before)."""
    record = _locked(session, user_id)
    if record is not None or not create:
        return record, record.expires_at if record else None
    created = session.execute(
        insert_for(session, Membership).values(user_id=user_id, expires_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["user_id"]).returning(Membership.user_id)).first()
    record = _locked(session, user_id)  # after a concurrent creator's commit, theirs
    return record, None if created else record.expires_at


def _locked(session: Session, user_id: int) -> Membership | None:
    return session.get(Membership, user_id, with_for_update=True, populate_existing=True)


def _insert_row(session: Session, user_id: int, kind: str, *, now: datetime, **values) -> bool:
    statement = insert_for(session, Entitlement).values(user_id=user_id, kind=kind, created_at=now, **values)
    if values.get("charge_id") is None:
        session.execute(statement)
        return True
    inserted = session.execute(
        statement.on_conflict_do_nothing(index_elements=["kind", "charge_id"],
                                         index_where=Entitlement.charge_id.is_not(None))
        .returning(Entitlement.id)).first()
    return inserted is not None
