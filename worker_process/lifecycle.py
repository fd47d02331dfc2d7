"""What a worker process starts and stops, called from gunicorn.conf.py's hooks.

Pools are per process: engine connections inherited from the master are
dropped after fork without closing the master's sockets, and everything is
disposed when the worker exits.
"""
from __future__ import annotations

import logging
import threading

from flask import Flask

from models.base import db

log = logging.getLogger(__name__)


def after_fork(app: Flask) -> None:
    """Forget connections inherited from the master (closing them would break the master's)."""
    with app.app_context():
        db.engine.dispose(close=False)
    app.extensions["db_probe"].dispose(close=False)


def start_background(app: Flask) -> None:
    app.extensions["outbox_sender"].start()
    app.extensions["watchdog"].start()
    for timer in app.extensions["timers"]:
        timer.start()


def release_early(app: Flask) -> None:
    """On SIGTERM (graceful stop, SIGHUP reload, max_requests): give connections back now.

    gunicorn lets in-flight requests finish for up to graceful_timeout while
    the replacement workers already open their pools; handing back idle
    connections at once keeps old and new workers inside the budget. Runs in
    a thread of its own: signal handlers must not wait on locks.
    """
    threading.Thread(target=shutdown, args=(app,), name="release-connections", daemon=True).start()


def shutdown(app: Flask) -> None:
    """Stop background work and close the pools. Safe to call more than once."""
    for timer in app.extensions["timers"]:
        timer.stop()
    app.extensions["watchdog"].stop()
    app.extensions["outbox_sender"].stop()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    app.extensions["db_probe"].dispose()
