"""Reconciliation: Telegram's Stars ledger against ours, beyond its 24-hour retention.

If the webhook was down for a day, or an update was lost, a payment exists in
``getStarTransactions`` that we never credited; a refund made elsewhere may
exist that we never saw. This pages through the transactions (holding no
database connection while it does) and applies what is missing with the same
charge-id key as the webhook, so running it any number of times, from any
number of workers, changes nothing twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from bot_outbox.client import BotApiClient
from membership import billing, invoice_payload
from settings import Settings
from settings.telegram import STARS_CURRENCY

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Telegram's maximum
MAX_PAGES = 100


@dataclass
class ReconcileReport:
    seen: int = 0
    credited: list[str] = field(default_factory=list)
    refunded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"reconciled {self.seen} transactions: credited {len(self.credited)} {self.credited}, "
                f"refunded {len(self.refunded)} {self.refunded}, skipped {len(self.skipped)} (not our invoices)")


def fetch_transactions(client: BotApiClient) -> list[dict]:
    """Every Stars transaction, oldest first. Network only; call it with no session open."""
    transactions: list[dict] = []
    for page in range(MAX_PAGES):
        result = client.call("getStarTransactions", {"offset": page * PAGE_SIZE, "limit": PAGE_SIZE})
        batch = (result or {}).get("transactions") or []
        transactions.extend(batch)
        if len(batch) < PAGE_SIZE:
            break
    return transactions


def apply(session: Session, settings: Settings, transactions: list[dict]) -> ReconcileReport:
    """Credit payments and record refunds we are missing; the caller commits."""
    report = ReconcileReport(seen=len(transactions))
    for transaction in transactions:
        partner_in, partner_out = transaction.get("source") or {}, transaction.get("receiver") or {}
        if partner_in.get("type") == "user" and transaction.get("amount", 0) > 0:
            _credit(session, settings, transaction, partner_in, report)
        elif partner_out.get("type") == "user":
            if billing.record_refund(session, transaction["id"]) is not None:
                report.refunded.append(transaction["id"])
    return report


def _credit(session: Session, settings: Settings, transaction: dict, partner: dict, report: ReconcileReport):
    payload = partner.get("invoice_payload") or ""
    signed = invoice_payload.verify(settings.payload_secret, payload)
    if signed is None or signed.user_id != partner["user"]["id"]:
        report.skipped.append(transaction["id"])  # not an invoice of ours
        return
    paid_at = billing.from_timestamp(transaction.get("date"))
    period = partner.get("subscription_period")
    charge = billing.PaidCharge(
        charge_id=transaction["id"],
        user_id=partner["user"]["id"],
        total_amount=transaction["amount"],
        currency=STARS_CURRENCY,
        invoice_payload=payload,
        is_recurring=bool(period),
        subscription_expires_at=paid_at + timedelta(seconds=period) if period and paid_at else None,
    )
    if billing.credit(session, settings, charge, source="reconcile") is not None:
        log.warning("reconciliation credited a payment the webhook never saw: %s (user %s)",
                    charge.charge_id, charge.user_id)
        report.credited.append(charge.charge_id)
