"""Bring the database schema to head at start, safely with several replicas at once.

The serialization lives in migrations/env.py (a transaction-level advisory
lock); here we only wait out a database that is still starting.
"""
from __future__ import annotations

import logging
import time

import flask_migrate
from flask import Flask
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)


def upgrade_to_head(app: Flask, wait_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            with app.app_context():
                flask_migrate.upgrade()
            return
        except OperationalError as error:
            if time.monotonic() >= deadline:
                raise
            log.warning("database not reachable for migrations yet, retrying: %s",
                        str(error).strip().splitlines()[0][:200])
            time.sleep(2)  # a start-up back-off, not synchronisation
