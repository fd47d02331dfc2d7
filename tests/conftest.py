"""Fixtures in the spirit of Flask's tutorial: ``app``, ``client``, ``runner``.

Everything is real: a throwaway PostgreSQL cluster (stack_harness/pg_cluster.py), the Bot API
emulator (botapi_emulator) as Telegram, and the app built by ``create_app``
with its migrations applied and its background threads running.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

from botapi_emulator import BotApiEmulator
from stack_harness.bot_env import BOT_TOKEN, CHANNEL_ID, make_env
from tests.helpers import build_app
from worker_process import lifecycle

pytest_plugins = ["tests.pg_fixtures"]


@pytest.fixture
def emulator():
    # implicit_users: tests may post updates straight to the webhook, so any
    # positive chat id counts as a user who has started the bot.
    with BotApiEmulator(token=BOT_TOKEN, channel_id=CHANNEL_ID, implicit_users=True) as emulator:
        yield emulator


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
