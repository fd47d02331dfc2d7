"""The jobs the in-process timers run (timers.py), each a short unit of background work."""
from __future__ import annotations

import logging

from flask import Flask

import outbox
import reconcile
import sweep
from background import BackgroundSlots, background_session
from outbox_sender import commit_and_wake
from update_ledger import prune_ledger

log = logging.getLogger(__name__)


def prune_job(app: Flask, slots: BackgroundSlots) -> None:
    """Keep the dedupe ledger and the outbox history from growing forever."""
    with background_session(app, slots) as session:
        prune_ledger(session)
        outbox.prune_finished(session)
        session.commit()


def sweep_job(app: Flask, slots: BackgroundSlots) -> None:
    settings = app.config["SETTINGS"]
    with background_session(app, slots) as session:
        report = sweep.run(session, settings)
        commit_and_wake(app, session)
    if report.reminded or report.removed:
        log.info(report.summary())


def reconcile_job(app: Flask, slots: BackgroundSlots) -> None:
    # Fetch first, with no session open: never hold a connection across the network.
    transactions = reconcile.fetch_transactions(app.extensions["telegram_client"])
    with background_session(app, slots) as session:
        report = reconcile.apply(session, app.config["SETTINGS"], transactions)
        commit_and_wake(app, session)
    if report.credited or report.refunded:
        log.warning(report.summary())
