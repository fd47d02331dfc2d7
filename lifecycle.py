"""What a worker process starts and stops, called from gunicorn.conf.py's hooks.

Pools are per process: engine connections inherited from the master are
dropped after fork without closing the master's sockets, and everything is
disposed when the worker exits.
"""
from __future__ import annotations

import logging

from flask import Flask

from extensions import db

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


def shutdown(app: Flask) -> None:
    for timer in app.extensions["timers"]:
        timer.stop()
    app.extensions["watchdog"].stop()
    app.extensions["outbox_sender"].stop()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    app.extensions["db_probe"].dispose()
