"""Fixtures in the spirit of Flask's tutorial: ``app``, ``client``, ``runner``.

Everything is real: a throwaway PostgreSQL cluster (tests/pg.py), the Bot API
emulator (tests/emulator) as Telegram, and the app built by ``create_app``
with its migrations applied and its background threads running.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

import lifecycle
import schema
from config import load_settings
from main import create_app
from tests.emulator import BotApiEmulator

pytest_plugins = ["tests.pg_fixtures"]

BOT_TOKEN = "123456:TEST-token_for-the-suite"
WEBHOOK_SECRET = "suite-secret_0123456789"
CHANNEL_ID = -1001000000001
ADMIN_ID = 9000


def make_env(database_url: str | None, api_url: str, **extra: str) -> dict[str, str]:
    env = {
        "BOT_TOKEN": BOT_TOKEN,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELEGRAM_API_URL": api_url,
        "CHANNEL_ID": str(CHANNEL_ID),
        "ADMIN_IDS": str(ADMIN_ID),
        "OUTBOX_SENDERS": "2",
        **extra,
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@pytest.fixture
def emulator():
    # implicit_users: tests may post updates straight to the webhook, so any
    # positive chat id counts as a user who has started the bot.
    with BotApiEmulator(token=BOT_TOKEN, channel_id=CHANNEL_ID, implicit_users=True) as emulator:
        yield emulator


def build_app(env: dict[str, str], background: bool = True, **overrides):
    """An app with its schema at head and, unless told otherwise, its background threads running."""
    app = create_app(load_settings(env, **overrides))
    schema.upgrade_to_head(app, wait_seconds=0)
    if background:
        lifecycle.start_background(app)
    return app


@pytest.fixture
def app(pg_database_url, emulator):
    app = build_app(make_env(pg_database_url, emulator.url), outbox_poll_seconds=0.2)
    yield app
    lifecycle.shutdown(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@dataclass
class LiveBot:
    """The app behind a real HTTP server, registered as the emulator's webhook."""

    app: object
    emulator: BotApiEmulator
    url: str


@pytest.fixture
def live(app, emulator):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-webhook", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/webhook"
    result = app.test_cli_runner().invoke(args=["set-webhook", url])
    assert result.exit_code == 0, result.output
    yield LiveBot(app, emulator, url)
    server.shutdown()
    thread.join(5)
