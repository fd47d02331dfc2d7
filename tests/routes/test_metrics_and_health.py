"""/metrics as Prometheus reads it (prometheus-client's own parser), and /health's public answer."""
from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot_outbox.client import TelegramError
from main import create_app
from models.base import db
from models.dead_letter import DeadLetter
from models.payment import REFUNDED, Payment
from settings import load_settings
from stack_harness.bot_env import make_env
from tests.helpers import build_app, enqueue
from worker_process import lifecycle

METRICS_TOKEN = "scrape-token-0123456789"


@pytest.fixture
def quiet_app(pg_database_url, emulator):
    """No sender threads: queued jobs stay pending, so the backlog is what the test made it."""
    app = build_app(make_env(pg_database_url, emulator.url), background=False)
    yield app
    lifecycle.shutdown(app)


def samples(response) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed by prometheus-client."""
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_has_one_charset_and_the_database_figures(quiet_app):
    enqueue(quiet_app, ("sendMessage", {"chat_id": 5, "text": "a"}, 5), ("sendMessage", {"chat_id": 6, "text": "b"}, 6))
    with quiet_app.app_context():
        db.session.add(DeadLetter(update_id=1, payload={}, error="boom", traceback=""))
        db.session.add_all([
            Payment(charge_id=f"c{i}", user_id=i, plan_id="month", stars=250, invoice_payload="p", source="webhook",
                    status=REFUNDED if i == 3 else "paid") for i in range(1, 4)])
        db.session.commit()

    response = quiet_app.test_client().get("/metrics")

    assert response.status_code == 200
    assert response.headers["Content-Type"].count("charset") == 1
    found = samples(response)
    assert found[("bot_database_figures_ok", ())] == 1
    assert found[("bot_outbox_pending", ())] == 2
    assert found[("bot_dead_letters", ())] == 1
    assert found[("bot_payments_total", (("outcome", "credited"),))] == 3
    assert found[("bot_payments_total", (("outcome", "refunded"),))] == 1
    assert ("bot_webhook_seconds_count", ()) in found, "the webhook series are kept"


def test_telegram_calls_are_counted_by_method_and_outcome(quiet_app, emulator):
    client = quiet_app.extensions["telegram_client"]
    before = samples(quiet_app.test_client().get("/metrics"))
    client.call("getMe")
    emulator.inject("getWebhookInfo", "429", retry_after=1)
    with pytest.raises(TelegramError):
        client.call("getWebhookInfo")

    after = samples(quiet_app.test_client().get("/metrics"))

    def delta(method, outcome):
        key = ("bot_telegram_api_calls_total", (("method", method), ("outcome", outcome)))
        return after.get(key, 0) - before.get(key, 0)
    assert delta("getMe", "ok") == 1
    assert delta("getWebhookInfo", "rate_limited") == 1


def test_the_pool_gauge_follows_checkouts(quiet_app):
    def checked_out():
        return samples(quiet_app.test_client().get("/metrics"))[("bot_db_pool_checked_out", ())]

    idle = checked_out()
    with quiet_app.app_context():
        connection = db.engine.connect()
        try:
            assert checked_out() == idle + 1
        finally:
            connection.close()
    assert checked_out() == idle


def test_metrics_token_requires_the_bearer(pg_database_url, emulator):
    app = build_app(make_env(pg_database_url, emulator.url, METRICS_TOKEN=METRICS_TOKEN), background=False)
    try:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": METRICS_TOKEN}).status_code == 401
        granted = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert granted.status_code == 200 and b"bot_outbox_pending" in granted.data
    finally:
        lifecycle.shutdown(app)


def test_health_keeps_the_database_error_out_of_its_answer(emulator, caplog):
    app = create_app(load_settings(make_env("postgresql://secret_user@127.0.0.1:9/bot", emulator.url)))
    try:
        with caplog.at_level(logging.WARNING, logger="routes.health"):
            response = app.test_client().get("/health")
        assert response.status_code == 503
        body = response.get_data(as_text=True)
        assert "psycopg2" not in body and "refused" not in body.lower()
        assert response.json["reason"] == "database unreachable or not answering"
        assert "database check failed: OperationalError: (psycopg2.OperationalError) Connection refused" in caplog.text
        metrics = samples(app.test_client().get("/metrics"))
        assert metrics[("bot_database_figures_ok", ())] == 0, "a scrape still answers with the database down"
    finally:
        lifecycle.shutdown(app)
