"""Reconciliation: Telegram's Stars ledger against ours, beyond its 24-hour retention.

If the webhook was down for a day, or an update was lost, a payment exists in
``getStarTransactions`` that we never credited; a refund made elsewhere may
exist that we never saw. A run:

1. takes the ``reconcile`` lease (one run at a time across workers and
   replicas; a row, so it is safe behind PgBouncer) and reads the cursor:
   how many transactions earlier runs applied (``--full`` starts from 0);
2. reads only the transactions after the cursor, holding no database
   connection while it does, renewing the lease as it goes;
3. applies refunds first, then payments, in short transactions, with the
   same charge-id keys as the webhook: a refunded charge is never credited,
   whatever order the two are met in, and nothing is done twice;
4. moves the cursor and gives the lease back, and tells the admins what it
   found that the webhook had missed.
"""
from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import count, islice
from typing import Callable

from sqlalchemy.orm import Session

from bot_outbox.client import BotApiClient
from database import leases
from membership import billing, notices, refunds
from models.base import utcnow
from models.star_cursor import RECONCILE, StarTransactionsCursor
from settings import Settings
from settings.telegram import STARS_CURRENCY

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Telegram's maximum
LEASE_TTL = timedelta(minutes=5)
RENEW_EVERY_PAGES = 10
APPLY_CHUNK = 200  # transactions applied per database transaction

# One short unit of database work: the session it yields is committed when the block ends cleanly.
UnitOfWork = Callable[[], AbstractContextManager[Session]]


@dataclass
class ReconcileReport:
    start: int = 0
    seen: int = 0
    credited: list[str] = field(default_factory=list)
    refunded: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def unexpected(self) -> bool:
        """Something the webhook should have handled and did not."""
        return bool(self.credited or self.refunded or self.unmatched)

    def summary(self) -> str:
        return (f"reconciled {self.seen} new transactions from #{self.start}: "
                f"credited {len(self.credited)} {self.credited}, refunded {len(self.refunded)} {self.refunded}, "
                f"unmatched and being refunded {len(self.unmatched)} {self.unmatched}, "
                f"skipped {len(self.skipped)} (no invoice of ours)")


def run(unit_of_work: UnitOfWork, client: BotApiClient, settings: Settings, *,
        full: bool = False) -> ReconcileReport | None:
    """One reconciliation; None if another one is running somewhere."""
    holder = leases.holder_id()
    with unit_of_work() as session:
        if not leases.acquire(session, RECONCILE, holder, LEASE_TTL):
            return None
        start = 0 if full else _cursor(session).applied
    try:
        transactions = fetch_from(client, start, renew=lambda: _renew(unit_of_work, holder))
        report = ReconcileReport(start=start, seen=len(transactions))
        _apply_in_chunks(unit_of_work, settings, transactions, report)
        with unit_of_work() as session:
            _advance(session, start + len(transactions))
            if report.unexpected:
                notices.tell_admins(session, settings, "Reconciliation found what the webhook missed: "
                                                      + report.summary())
    finally:
        with unit_of_work() as session:
            leases.release(session, RECONCILE, holder)
    if report.unexpected:
        log.warning(report.summary())
    return report


def fetch_from(client: BotApiClient, offset: int, renew: Callable[[], None] = lambda: None) -> list[dict]:
    """The transactions after ``offset``, oldest first. Network only: call it with no session open."""
    transactions: list[dict] = []
    for page in count():
        result = client.call("getStarTransactions", {"offset": offset + len(transactions), "limit": PAGE_SIZE})
        batch = (result or {}).get("transactions") or []
        transactions.extend(batch)
        if len(batch) < PAGE_SIZE:
            return transactions
        if page % RENEW_EVERY_PAGES == RENEW_EVERY_PAGES - 1:
            renew()
    return transactions


def apply(session: Session, settings: Settings, transactions: list[dict],
          report: ReconcileReport | None = None) -> ReconcileReport:
    """Apply refunds, then payments, that we are missing; the caller commits."""
    report = report or ReconcileReport(seen=len(transactions))
    for transaction in sorted(transactions, key=_refunds_first):
        if _is_refund(transaction):
            _refund(session, settings, transaction, report)
        elif _is_payment(transaction):
            _credit(session, settings, transaction, report)
    return report


def _apply_in_chunks(unit_of_work: UnitOfWork, settings: Settings, transactions: list[dict],
                     report: ReconcileReport) -> None:
    """All refunds before any payment, a bounded number per database transaction."""
    ordered = iter(sorted(transactions, key=_refunds_first))
    while chunk := list(islice(ordered, APPLY_CHUNK)):
        with unit_of_work() as session:
            apply(session, settings, chunk, report)


def _refunds_first(transaction: dict) -> int:
    return 0 if _is_refund(transaction) else 1


def _is_refund(transaction: dict) -> bool:
    return (transaction.get("receiver") or {}).get("type") == "user"


def _is_payment(transaction: dict) -> bool:
    return (transaction.get("source") or {}).get("type") == "user" and transaction.get("amount", 0) > 0


def _refund(session: Session, settings: Settings, transaction: dict, report: ReconcileReport) -> None:
    user_id = transaction["receiver"]["user"]["id"]
    if refunds.record_refund(session, settings, transaction["id"], user_id):
        log.warning("reconciliation recorded a refund the webhook never saw: %s (user %s)", transaction["id"], user_id)
        report.refunded.append(transaction["id"])


def _credit(session: Session, settings: Settings, transaction: dict, report: ReconcileReport) -> None:
    partner = transaction["source"]
    payload = partner.get("invoice_payload")
    if not payload:
        report.skipped.append(transaction["id"])  # not a payment for an invoice (of ours or anyone's)
        return
    period = partner.get("subscription_period")
    paid_at = billing.from_timestamp(transaction.get("date"))
    charge = billing.PaidCharge(
        charge_id=transaction["id"],
        user_id=partner["user"]["id"],
        total_amount=transaction["amount"],
        currency=STARS_CURRENCY,
        invoice_payload=payload,
        is_recurring=bool(period),
        subscription_expires_at=paid_at + timedelta(seconds=period) if period and paid_at else None,
    )
    credited = billing.credit(session, settings, charge, source="reconcile")
    if credited is None:
        return
    if credited.outcome == "unmatched":
        report.unmatched.append(charge.charge_id)
    elif credited.outcome == "credited":
        log.warning("reconciliation credited a payment the webhook never saw: %s (user %s)",
                    charge.charge_id, charge.user_id)
        report.credited.append(charge.charge_id)


def _cursor(session: Session) -> StarTransactionsCursor:
    cursor = session.get(StarTransactionsCursor, RECONCILE)
    if cursor is None:
        cursor = StarTransactionsCursor(name=RECONCILE, applied=0, updated_at=utcnow())
        session.add(cursor)
    return cursor


def _advance(session: Session, applied: int) -> None:
    cursor = _cursor(session)
    cursor.applied = max(cursor.applied, applied)
    cursor.updated_at = utcnow()


def _renew(unit_of_work: UnitOfWork, holder: str) -> None:
    with unit_of_work() as session:
        if not leases.acquire(session, RECONCILE, holder, LEASE_TTL):
            raise LeaseLost("another reconciliation took over the lease")


class LeaseLost(RuntimeError):
    """The lease ran out while this run was reading: stop, and let the other run finish."""
