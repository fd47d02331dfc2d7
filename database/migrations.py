"""The schema's migrations: Flask-Migrate, and bringing the schema to head at start.

Every replica migrates at start, safely at once: the serialization lives in
migrations/env.py (a transaction-level advisory lock); here we only wait out
a database that is still starting.
"""
from __future__ import annotations

import logging
import time

import flask_migrate
from flask import Flask
from sqlalchemy.exc import OperationalError

from database.errors import describe_error

log = logging.getLogger(__name__)

# Bound to the app and the migrations directory by the factory.
migrate = flask_migrate.Migrate()


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
            log.warning("database not reachable for migrations yet, retrying: %s", describe_error(error))
            time.sleep(2)  # a start-up back-off, not synchronisation
