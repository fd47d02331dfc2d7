"""The application factory, and ``app`` for ``gunicorn main:app``.

The factory is a list of small named steps. Configuration is read and
validated once (the ``settings`` package) and reaches everything else as an
argument or through ``settings.current_settings()``.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask

import cli
import models
from bot_outbox.client import BotApiClient, Timeouts
from bot_outbox.pacing import SharedPace
from bot_outbox.sender import OutboxSender
from database.background import BackgroundSlots
from database.engine import engine_options, install_timeouts
from database.migrations import migrate
from database.probe import DatabaseProbe, PoolTimeouts
from membership.job_runners import RUNNERS
from models.base import db
from observability.logs import configure_logging
from observability.metrics import track_pool
from observability.watchdog import Watchdog
from routes import health, metrics, sandbox, webhook
from settings import Settings, install, load_settings_or_exit
from worker_process.periodic_jobs import periodic_tasks

MAX_UPDATE_BYTES = 1024 * 1024  # Telegram's updates are far smaller; bigger is not Telegram
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings_or_exit()
    app = Flask(__name__, instance_relative_config=True)
    install(app, settings)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings),
        MAX_CONTENT_LENGTH=MAX_UPDATE_BYTES,
    )
    configure_logging(settings.log_level, settings.log_secrets, settings.log_format)
    register_extensions(app, settings)
    register_workers(app, settings)
    register_blueprints(app, settings)
    cli.register(app)
    return app


def register_extensions(app: Flask, settings: Settings) -> None:
    models.load_all()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    with app.app_context():
        install_timeouts(db.engine, settings)
        track_pool(db.engine)
        app.extensions["db_probe"] = DatabaseProbe.for_settings(settings, db.engine.url)
    app.extensions["pool_timeouts"] = PoolTimeouts()


def register_workers(app: Flask, settings: Settings) -> None:
    """Background parts, created here and started per worker (lifecycle.start_background)."""
    client = BotApiClient(
        settings.telegram_api_url, settings.bot_token,
        Timeouts(connect=settings.telegram_connect_timeout, read=settings.telegram_read_timeout),
    )
    slots = BackgroundSlots(settings.background_slots)
    app.extensions["telegram_client"] = client
    app.extensions["background_slots"] = slots
    app.extensions["outbox_sender"] = OutboxSender(
        app, client, slots, RUNNERS, threads=settings.outbox_senders, poll_seconds=settings.outbox_poll_seconds,
        lease=timedelta(seconds=settings.outbox_lease_seconds), heartbeat=settings.outbox_heartbeat_seconds,
        max_hold=settings.outbox_runner_seconds, replica=settings.replica_id,
        chat_interval=timedelta(milliseconds=settings.outbox_chat_interval_ms),
        # Telegram's overall pace (~30/s), one schedule in the database for every worker of every replica.
        pace=SharedPace(settings.outbox_max_per_second))
    app.extensions["watchdog"] = Watchdog(settings.watchdog_threshold_seconds)
    app.extensions["timers"] = periodic_tasks(app, settings, slots)


def register_blueprints(app: Flask, settings: Settings) -> None:
    app.register_blueprint(webhook.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    if settings.local_sandbox:  # the page at / plays Telegram: never on a real bot
        app.register_blueprint(sandbox.bp)


app = create_app()
