"""The jobs the in-process timers run (worker_process/timers.py), each a short unit of background work."""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask

from bot_outbox import jobs
from bot_outbox.runners import commit_and_wake, unit_of_work
from database import leases
from database.background import BackgroundSlots, background_session
from membership import reconcile, sweep
from settings import Settings, settings_of
from telegram_updates.ledger import prune_ledger
from worker_process.timers import PeriodicTask

log = logging.getLogger(__name__)

SWEEP_LEASE = "sweep"


def prune_job(app: Flask, slots: BackgroundSlots) -> None:
    """Keep the dedupe ledger and the outbox history from growing forever."""
    with background_session(app, slots) as session:
        prune_ledger(session)
        jobs.prune_finished(session)
        session.commit()


def sweep_job(app: Flask, slots: BackgroundSlots) -> None:
    """Once per interval across every worker of every replica: the first to take the sweep lease.

    Each reminder and removal is claimed row by row, so concurrent sweeps
    would be safe; the lease only saves them the redundant work. It is never
    given back: it runs out just before the next interval.
    """
    settings = settings_of(app)
    with background_session(app, slots) as session:
        ttl = timedelta(seconds=settings.sweep_interval_seconds * 0.9)
        if not leases.acquire(session, SWEEP_LEASE, leases.holder_id(), ttl):
            return
        report = sweep.run(session, settings)
        commit_and_wake(app, session)
    if report.reminded or report.removed:
        log.info(report.summary())


def reconcile_job(app: Flask, slots: BackgroundSlots) -> None:
    """Incremental, and once at a time across workers and replicas (the reconcile lease)."""
    reconcile.run(lambda: unit_of_work(app, slots), app.extensions["telegram_client"], settings_of(app))


def periodic_tasks(app: Flask, settings: Settings, slots: BackgroundSlots) -> list[PeriodicTask]:
    """The in-process timers a worker runs; reconciliation only with a real bot token."""
    timers = [PeriodicTask(app, slots, "prune", prune_job, every_seconds=3600)]
    if settings.sweep_interval_seconds:
        timers.append(PeriodicTask(app, slots, "sweep", sweep_job, settings.sweep_interval_seconds))
    if settings.reconcile_interval_seconds and settings.bot_token:
        timers.append(PeriodicTask(app, slots, "reconcile", reconcile_job,
                                   settings.reconcile_interval_seconds))
    return timers
