"""The factory itself, and the embedded default (SQLite) a fresh clone runs on."""
from __future__ import annotations

from main import create_app
from models.user import User
from settings import load_settings, settings_of
from stack_harness.bot_env import WEBHOOK_SECRET
from tests.helpers import build_app, command, count, post_update
from worker_process import lifecycle


def test_factory_uses_the_settings_it_is_given(tmp_path):
    settings = load_settings({}, telegram_api_url="http://127.0.0.1:9")
    app = create_app(settings)
    assert settings_of(app) is settings
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    assert {rule.rule for rule in app.url_map.iter_rules()} >= {"/webhook", "/health", "/livez"}


def test_embedded_default_runs_on_sqlite_with_health_and_webhook(tmp_path):
    # The default is sqlite:///bot.sqlite3 under instance/; same engine, a private file.
    app = build_app({"WEBHOOK_SECRET": WEBHOOK_SECRET, "TELEGRAM_API_URL": "http://127.0.0.1:9",
                     "DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3"})
    try:
        client = app.test_client()
        health = client.get("/health")
        assert health.status_code == 200 and health.json["database"]["ok"] is True
        reply = post_update(client, command(1, 7, "/start"))
        assert reply.status_code == 200 and reply.json["method"] == "sendMessage"
        assert post_update(client, command(1, 7, "/start")).data == b""
        assert count(app, User, User.id == 7) == 1
    finally:
        lifecycle.shutdown(app)


def test_local_mode_without_secret_keeps_the_webhook_closed():
    app = create_app(load_settings({}))
    response = app.test_client().post("/webhook", json=command(1, 7))
    assert response.status_code == 401
