"""Configuration is validated once, at start, with one clear line per mistake."""
import subprocess
import sys
from pathlib import Path

import pytest

from settings import ConfigError, load_settings, normalize_database_url
from settings.plans import parse_plans

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "BOT_TOKEN": "123456:ABC-def_ghi",
    "WEBHOOK_SECRET": "s3cret_token-OK",
    "DATABASE_URL": "postgres://u:p@db.internal:5432/app",
}


def test_postgres_urls_always_use_psycopg2():
    assert normalize_database_url("postgres://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert normalize_database_url("postgresql://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert load_settings(GOOD).database_url.startswith("postgresql+psycopg2://")


def test_unpooled_url_is_used_for_migrations():
    settings = load_settings({**GOOD, "DATABASE_UNPOOLED_URL": "postgresql://u:p@direct/app"})
    assert settings.migration_database_url == "postgresql+psycopg2://u:p@direct/app"
    assert load_settings(GOOD).migration_database_url == load_settings(GOOD).database_url


def test_no_database_url_means_local_sqlite_without_secrets():
    settings = load_settings({})
    assert settings.is_local and settings.database_url.startswith("sqlite:///")
    assert settings.plans, "demo plans when PLANS is unset"


@pytest.mark.parametrize("env, message", [
    ({**GOOD, "BOT_TOKEN": ""}, "BOT_TOKEN is required"),
    ({**GOOD, "WEBHOOK_SECRET": ""}, "WEBHOOK_SECRET is required"),
    ({**GOOD, "WEBHOOK_SECRET": "has space"}, "WEBHOOK_SECRET must be 1-256"),
    ({**GOOD, "WEBHOOK_SECRET": "x" * 257}, "WEBHOOK_SECRET must be 1-256"),
    ({**GOOD, "BOT_TOKEN": "not-a-token"}, "BOT_TOKEN is malformed"),
    ({**GOOD, "DATABASE_URL": "mysql://x/y"}, "not supported"),
    ({**GOOD, "TELEGRAM_API_URL": "ftp://x"}, "TELEGRAM_API_URL"),
    ({**GOOD, "WEB_CONCURRENCY": "two"}, "WEB_CONCURRENCY='two' is not a whole number"),
    ({**GOOD, "ADMIN_IDS": "12,abc"}, "ADMIN_IDS"),
    ({**GOOD, "CHANNEL_ID": "@channel"}, "CHANNEL_ID"),
    ({**GOOD, "PLANS": "[{"}, "PLANS is invalid: not valid JSON"),
    ({**GOOD, "PLANS": '[{"id": "m", "title": "M", "stars": 0, "days": 30}]'}, "stars must be"),
    ({**GOOD, "PLANS": '[{"id": "m", "title": "M", "stars": 10, "days": 7, "recurring": true}]'}, "30 days"),
])
def test_bad_configuration_is_one_clear_error(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_budget_refuses_more_connections_than_allowed():
    with pytest.raises(ConfigError) as refused:
        load_settings({**GOOD, "WEB_CONCURRENCY": "4", "GUNICORN_THREADS": "8", "DB_MAX_CONNECTIONS": "20"})
    # 4 workers x (8 threads + 2 background + 0 overflow + 1 probe) = 44
    assert "= 44 connections > DB_MAX_CONNECTIONS=20" in str(refused.value)
    fits = load_settings({**GOOD, "WEB_CONCURRENCY": "4", "GUNICORN_THREADS": "8", "DB_MAX_CONNECTIONS": "44"})
    assert fits.connections_needed == 44


def test_admin_ids_and_plans_parse():
    settings = load_settings({**GOOD, "ADMIN_IDS": " 1, 22,333 ", "CHANNEL_ID": "-1001234567890"})
    assert settings.admin_ids == {1, 22, 333}
    assert settings.channel_id == -1001234567890
    plans = parse_plans('[{"id": "gold", "title": "Gold", "stars": 500, "days": 90}]')
    assert [(p.id, p.stars, p.days, p.recurring) for p in plans] == [("gold", 500, 90, False)]


def test_gunicorn_refuses_to_start_with_one_line_on_bad_config(tmp_path):
    env = {"PATH": "/usr/bin:/bin", **GOOD, "WEB_CONCURRENCY": "10", "DB_MAX_CONNECTIONS": "20",
           "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "main:app"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("configuration error: connection budget exceeded: 10 workers")


def test_the_outbox_lease_outlasts_a_missed_heartbeat_and_the_slowest_renewal():
    default = load_settings(GOOD)
    assert (default.outbox_lease_seconds, default.outbox_heartbeat_seconds) == (10, 2.0)
    assert load_settings({**GOOD, "OUTBOX_LEASE_SECONDS": "30"}).outbox_heartbeat_seconds == 6.0
    # A slower database gets a longer default lease, never a server that refuses to start.
    slow = load_settings({**GOOD, "DB_STATEMENT_TIMEOUT_MS": "20000"})
    assert slow.outbox_lease_seconds > 2 * slow.outbox_heartbeat_seconds + slow.db_client_timeout
    with pytest.raises(ConfigError, match=r"OUTBOX_LEASE_SECONDS=10 must exceed two heartbeats "
                                          r"\(OUTBOX_HEARTBEAT_SECONDS=4\) plus the slowest database round trip"):
        load_settings({**GOOD, "OUTBOX_HEARTBEAT_SECONDS": "4"})
    # A job's own length is covered by renewals, up to its budget of calls.
    assert default.outbox_runner_seconds == pytest.approx(4 * (3.05 + 10 + 3))


def test_the_outbox_owner_names_the_replica():
    assert load_settings({**GOOD, "RAILWAY_REPLICA_ID": "replica-7"}).replica_id == "replica-7"
    assert load_settings(GOOD).replica_id  # the host name otherwise
