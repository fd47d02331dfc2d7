"""Configuration is validated once, at start, with one clear line per mistake."""
import subprocess
import sys
from pathlib import Path

import pytest

from settings import ConfigError, load_settings, normalize_database_url
from settings.plans import parse_plans
from settings.sandbox import SANDBOX_ADMIN_ID, SANDBOX_BOT_TOKEN, SANDBOX_CHANNEL_ID

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "BOT_TOKEN": "123456:ABC-def_ghi",
    "WEBHOOK_SECRET": "s3cret_token-OK",
    "DATABASE_URL": "postgres://u:p@db.internal:5432/app",
    "CHANNEL_ID": "-1001234567890",
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


def test_no_token_on_the_embedded_database_is_the_local_sandbox():
    settings = load_settings({"PORT": "8100"})
    assert settings.local_sandbox and settings.sandbox_telegram_port == 8101
    assert settings.telegram_api_url == "http://127.0.0.1:8101" and settings.bot_token == SANDBOX_BOT_TOKEN
    assert settings.channel_id == SANDBOX_CHANNEL_ID and settings.admin_ids == {SANDBOX_ADMIN_ID}
    chosen = load_settings({"SANDBOX_TELEGRAM_PORT": "9100", "ADMIN_IDS": "7", "CHANNEL_ID": "-1009"})
    assert chosen.telegram_api_url == "http://127.0.0.1:9100" and chosen.admin_ids == {7} and chosen.channel_id == -1009


def test_a_bot_token_never_starts_the_sandbox():
    on_sqlite = load_settings({"BOT_TOKEN": GOOD["BOT_TOKEN"], "CHANNEL_ID": GOOD["CHANNEL_ID"]})
    assert on_sqlite.is_local and not on_sqlite.local_sandbox
    assert on_sqlite.telegram_api_url == "https://api.telegram.org" and on_sqlite.bot_token == GOOD["BOT_TOKEN"]
    assert not load_settings(GOOD).local_sandbox


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
    ({"PORT": "8000", "SANDBOX_TELEGRAM_PORT": "8000"}, "the emulator needs a port of its own"),
    ({"SANDBOX_TELEGRAM_PORT": "70000"}, "SANDBOX_TELEGRAM_PORT=70000 must be between 1 and 65535"),
    ({**GOOD, "PLANS": '[{"id": "m", "title": "M", "stars": 0, "days": 30}]'}, "stars must be"),
    ({**GOOD, "PLANS": '[{"id": "m", "title": "M", "stars": 10, "days": 7, "recurring": true}]'}, "30 days"),
])
def test_bad_configuration_is_one_clear_error(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_every_shape_fits_the_budget_by_sharing_connections():
    shared = load_settings({**GOOD, "WEB_CONCURRENCY": "4", "GUNICORN_THREADS": "8", "DB_MAX_CONNECTIONS": "20"})
    # 4 workers x (4 pooled + 1 probe) = 20: eight threads share four connections
    assert (shared.pool_size, shared.background_slots, shared.connections_needed) == (4, 2, 20)
    assert "(of 10 wanted: 8 threads share them)" in shared.describe_pool()
    roomy = load_settings({**GOOD, "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "8", "DB_MAX_CONNECTIONS": "40"})
    assert (roomy.pool_size, roomy.connections_needed) == (10, 22)
    tight = load_settings({**GOOD, "WEB_CONCURRENCY": "6", "GUNICORN_THREADS": "4", "DB_MAX_CONNECTIONS": "20"})
    assert (tight.pool_size, tight.background_slots) == (2, 1)
    with pytest.raises(ConfigError) as refused:
        load_settings({**GOOD, "WEB_CONCURRENCY": "10", "DB_MAX_CONNECTIONS": "20"})
    assert "each would get 2 connections, 1 for its health probe and 1 for requests" in str(refused.value)


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


def test_a_token_without_a_channel_is_refused_with_a_line_naming_channel_id():
    env = {key: value for key, value in GOOD.items() if key != "CHANNEL_ID"}
    with pytest.raises(ConfigError, match="^CHANNEL_ID is required when BOT_TOKEN is set"):
        load_settings(env)
    sandbox = load_settings({})
    assert sandbox.local_sandbox and sandbox.channel_id is not None, "the sandbox brings its own demo channel"


@pytest.mark.parametrize("env, message", [
    ({**GOOD, "LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' must be one of debug, info, warning, error, critical"),
    ({**GOOD, "LOG_FORMAT": "xml"}, "LOG_FORMAT='xml' must be one of json, text"),
    ({**GOOD, "METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 16"),
    ({**GOOD, "RAILWAY_PUBLIC_DOMAIN": "https://x.example/webhook"}, "RAILWAY_PUBLIC_DOMAIN"),
])
def test_operations_settings_are_validated(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_json_logs_are_the_default_on_railway_and_text_elsewhere():
    assert load_settings(GOOD).log_format == "text"
    assert load_settings({**GOOD, "RAILWAY_ENVIRONMENT": "production"}).log_format == "json"
    assert load_settings({**GOOD, "RAILWAY_DEPLOYMENT_ID": "d-1"}).log_format == "json"
    assert load_settings({**GOOD, "RAILWAY_ENVIRONMENT": "production", "LOG_FORMAT": "TEXT"}).log_format == "text"
    assert load_settings({**GOOD, "LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_demo_plans_and_no_admins_are_warned_about_in_production_only():
    warnings = load_settings(GOOD).start_warnings()
    assert [w.split(":")[0] for w in warnings] == ["PLANS is not set", "ADMIN_IDS is not set"]
    configured = load_settings({**GOOD, "ADMIN_IDS": "7", "PLANS": '[{"id": "m", "title": "M", "stars": 9, "days": 30}]'})
    assert configured.start_warnings() == []
    assert load_settings({}).start_warnings() == []


def test_the_control_socket_has_a_per_port_default():
    assert load_settings({**GOOD, "PORT": "8123"}).control_socket.endswith("gunicorn-bot-8123.ctl")
    assert load_settings({**GOOD, "GUNICORN_CONTROL_SOCKET": "/run/x.ctl"}).control_socket == "/run/x.ctl"


def test_a_dotenv_file_in_the_working_directory_is_read_under_the_environment(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("ADMIN_IDS=11,12\nFLOOD_LIMIT_PER_MINUTE=7\n")
    monkeypatch.chdir(tmp_path)
    for name in ("ADMIN_IDS", "FLOOD_LIMIT_PER_MINUTE", "DATABASE_URL", "BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLOOD_LIMIT_PER_MINUTE", "9")  # the environment wins over the file
    settings = load_settings()
    assert settings.admin_ids == {11, 12} and settings.flood_limit_per_minute == 9


@pytest.mark.parametrize("variable, value, first_words", [
    ("LOG_LEVEL", "loud", "configuration error: LOG_LEVEL='loud' must be one of"),
    ("CHANNEL_ID", "", "configuration error: CHANNEL_ID is required when BOT_TOKEN is set"),
])
def test_gunicorn_refuses_a_bad_setting_in_one_line(tmp_path, variable, value, first_words):
    env = {"PATH": "/usr/bin:/bin", **GOOD, variable: value, "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "main:app"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(first_words), lines


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
