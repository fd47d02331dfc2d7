"""Figures /metrics reads from the database at scrape time: the backlog and the money.

Counting rows is what the database is for: the outbox backlog, the dead
letters and the payments are the same whichever worker answers the scrape,
and no worker has to keep a count in step with rows other replicas write.
One statement, under a short ``statement_timeout``, so a scrape cannot hold a
connection for long; when it fails the scrape still answers, with
``bot_database_figures_ok 0`` instead of the figures.
"""
from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from models.dead_letter import DeadLetter
from models.outbox import PENDING, OutboxJob
from models.payment import REFUNDED, Payment

SCRAPE_STATEMENT_TIMEOUT_MS = 500


@dataclass(frozen=True)
class DatabaseFigures:
    outbox_pending: int
    dead_letters: int
    payments: int
    refunds: int


def read(session: Session) -> DatabaseFigures:
    """One round trip; the caller ends the transaction (a rollback: nothing is written)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {SCRAPE_STATEMENT_TIMEOUT_MS}"))
    counts = select(
        select(func.count()).select_from(OutboxJob).where(OutboxJob.status == PENDING).scalar_subquery(),
        select(func.count()).select_from(DeadLetter).scalar_subquery(),
        select(func.count()).select_from(Payment).scalar_subquery(),
        select(func.count()).select_from(Payment).where(Payment.status == REFUNDED).scalar_subquery(),
    )
    pending, dead, paid, refunded = session.execute(counts).one()
    return DatabaseFigures(pending, dead, paid, refunded)


def metric_families(figures: DatabaseFigures | None) -> list[Metric]:
    ok = GaugeMetricFamily("bot_database_figures_ok", "1 when this scrape could read the figures below")
    ok.add_metric([], 0 if figures is None else 1)
    if figures is None:
        return [ok]
    pending = GaugeMetricFamily("bot_outbox_pending", "Bot API calls owed to Telegram and not yet sent")
    pending.add_metric([], figures.outbox_pending)
    dead = GaugeMetricFamily("bot_dead_letters", "Updates whose handler failed, kept for an operator")
    dead.add_metric([], figures.dead_letters)
    payments = CounterMetricFamily("bot_payments", "Stars payments in the ledger: credited, and of those refunded",
                                   labels=["outcome"])
    payments.add_metric(["credited"], figures.payments)
    payments.add_metric(["refunded"], figures.refunds)
    return [ok, pending, dead, payments]
