"""Prometheus metrics. Under gunicorn every worker writes its own files
(prometheus-client's multiprocess mode, directory set up by gunicorn.conf.py)
and /metrics merges them, so the figures cover the whole server.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric
from sqlalchemy import event
from sqlalchemy.engine import Engine

WEBHOOK_UPDATES = Counter(
    "bot_webhook_updates_total", "Webhook requests by outcome",
    ["outcome"],  # processed, duplicate, dead_letter, unavailable, rejected, pre_checkout
)
WEBHOOK_SECONDS = Histogram(
    "bot_webhook_seconds", "Time from request to answer for updates that reached the database",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_JOBS = Counter(
    "bot_outbox_jobs_total", "Outbox job attempts by outcome",
    ["kind", "outcome"],  # done, retry, failed, lease_lost (another sender holds the job now)
)

TELEGRAM_CALLS = Counter(
    "bot_telegram_api_calls_total", "Bot API calls made by this server (outbox senders, CLI), by outcome",
    ["method", "outcome"],  # ok, refused (4xx), rate_limited (429), server_error (5xx), unavailable
)
# Each worker counts its own checkouts; livesum adds up the workers alive now,
# so a dead worker's last value does not linger in the sum.
DB_POOL_CHECKED_OUT = Gauge(
    "bot_db_pool_checked_out", "Pooled database connections lent out right now, summed over live workers",
    multiprocess_mode="livesum",
)


def track_pool(engine: Engine) -> None:
    """Keep DB_POOL_CHECKED_OUT in step with the engine's pool."""
    event.listen(engine, "checkout", lambda *_: DB_POOL_CHECKED_OUT.inc())
    event.listen(engine, "checkin", lambda *_: DB_POOL_CHECKED_OUT.dec())


class _Fixed:
    """A collector that yields metric families read once, at scrape time."""

    def __init__(self, families: Iterable[Metric]):
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition(multiprocess_dir: str | None, scraped: Iterable[Metric] = ()) -> bytes:
    """The text format for /metrics: merged across workers when they share a directory,
    followed by ``scraped``, figures this request read (e.g. from the database)."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
        merged = generate_latest(registry)
    else:
        merged = generate_latest()
    extra = CollectorRegistry()
    extra.register(_Fixed(scraped))
    return merged + generate_latest(extra)


def clear(multiprocess_dir: str | None) -> None:
    """Start from zero: the directory must not hold files of an earlier run."""
    if multiprocess_dir:
        for stale in Path(multiprocess_dir).glob("*.db"):
            stale.unlink(missing_ok=True)


def worker_exited(multiprocess_dir: str | None, pid: int) -> None:
    if multiprocess_dir:
        multiprocess.mark_process_dead(pid, path=multiprocess_dir)
