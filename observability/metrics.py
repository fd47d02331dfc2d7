"""Prometheus metrics. Under gunicorn every worker writes its own files
(prometheus-client's multiprocess mode, directory set up by gunicorn.conf.py)
and /metrics merges them, so the figures cover the whole server.
"""
from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

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


def exposition(multiprocess_dir: str | None) -> bytes:
    """The text format for /metrics: merged across workers when they share a directory."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
        return generate_latest(registry)
    return generate_latest()


def clear(multiprocess_dir: str | None) -> None:
    """Start from zero: the directory must not hold files of an earlier run."""
    if multiprocess_dir:
        for stale in Path(multiprocess_dir).glob("*.db"):
            stale.unlink(missing_ok=True)


def worker_exited(multiprocess_dir: str | None, pid: int) -> None:
    if multiprocess_dir:
        multiprocess.mark_process_dead(pid, path=multiprocess_dir)
