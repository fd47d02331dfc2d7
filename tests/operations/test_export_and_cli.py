"""Owner and operator commands run as the operator runs them: ``flask`` in a subprocess."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from models.base import db
from models.membership import Membership
from models.payment import REFUNDED, Payment
from models.user import User
from stack_harness.bot_env import make_env
from stack_harness.real_server import REPO, flask_cli

NOW = datetime.now(timezone.utc)


def _seed(app) -> None:
    with app.app_context():
        db.session.add_all([
            User(id=501, username="ada", first_name="Ada, \"the\" first", referral_source="ads"),
            User(id=502, first_name="Bob"),
            Membership(user_id=501, expires_at=NOW + timedelta(days=10)),
            Membership(user_id=502, expires_at=NOW - timedelta(days=1)),
            Payment(charge_id="ch-1", user_id=501, plan_id="month", stars=250, invoice_payload="p1:x",
                    source="webhook", created_at=NOW - timedelta(days=20)),
            Payment(charge_id="ch-2", user_id=502, plan_id="week", stars=75, invoice_payload="p1:y",
                    source="reconcile", status=REFUNDED, refunded_at=NOW - timedelta(days=2),
                    created_at=NOW - timedelta(days=8)),
        ])
        db.session.commit()


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_members_and_payments_as_csv_on_stdout(app, pg_database_url, emulator):
    _seed(app)
    env = make_env(pg_database_url, emulator.url)

    members = flask_cli(env, "export", "members")
    payments = flask_cli(env, "export", "payments")

    assert members.returncode == 0 and payments.returncode == 0, members.stderr + payments.stderr
    assert members.stdout.splitlines()[0] == \
        "user_id,username,first_name,expires_at,active,referral_source,joined_bot_at"
    rows = _csv(members.stdout)
    assert [(r["user_id"], r["username"], r["first_name"], r["active"]) for r in rows] == [
        ("501", "ada", 'Ada, "the" first', "yes"), ("502", "", "Bob", "no")]
    assert datetime.fromisoformat(rows[0]["expires_at"]).tzinfo is not None
    paid = _csv(payments.stdout)
    assert [(r["charge_id"], r["stars"], r["status"], r["source"]) for r in paid] == [
        ("ch-1", "250", "paid", "webhook"), ("ch-2", "75", "refunded", "reconcile")]
    assert "exported 2 payments" in payments.stderr


def test_export_refuses_an_unknown_table(pg_database_url, emulator):
    result = flask_cli(make_env(pg_database_url, emulator.url), "export", "users")
    assert result.returncode == 2 and "'users' is not one of 'members', 'payments'" in result.stderr


def test_sweep_with_the_database_down_is_one_line(emulator):
    env = make_env("postgresql://nobody@127.0.0.1:9/none", emulator.url)

    result = flask_cli(env, "sweep", "--dry-run")

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: database unavailable: OperationalError"), lines


def test_migrate_brings_the_schema_to_head_and_a_database_down_is_one_line(pg_database_url, emulator):
    migrated = flask_cli(make_env(pg_database_url, emulator.url), "migrate")
    assert migrated.returncode == 0 and "schema at head" in migrated.stdout, migrated.stderr
    again = flask_cli(make_env(pg_database_url, emulator.url), "migrate")
    assert again.returncode == 0, again.stderr
    down = flask_cli(make_env("postgresql://nobody@127.0.0.1:9/none", emulator.url, DB_WAIT_AT_START_SECONDS="0"),
                     "migrate")
    lines = [line for line in down.stderr.splitlines() if line.strip()]
    assert down.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: not migrated:"), lines


def test_set_webhook_defaults_to_the_railway_domain(pg_database_url, emulator):
    env = make_env(pg_database_url, emulator.url, RAILWAY_PUBLIC_DOMAIN="bot-production.up.railway.app")

    result = flask_cli(env, "set-webhook")

    assert result.returncode == 0, result.stderr
    assert emulator.webhook_info()["url"] == "https://bot-production.up.railway.app/webhook"


def test_set_webhook_refuses_what_names_no_host(pg_database_url, emulator):
    env = make_env(pg_database_url, emulator.url, RAILWAY_PUBLIC_DOMAIN="")

    without = flask_cli(env, "set-webhook")
    empty_host = flask_cli(env, "set-webhook", "https:///webhook")

    assert without.returncode == 1 and "RAILWAY_PUBLIC_DOMAIN is not set" in without.stderr
    assert empty_host.returncode == 1 and "names no host" in empty_host.stderr
    assert emulator.calls("setWebhook") == []


def test_plain_flask_finds_the_app_through_flaskenv(pg_database_url, emulator):
    env = {**os.environ, **make_env(pg_database_url, emulator.url)}
    env.pop("FLASK_APP", None)
    assert flask_cli(make_env(pg_database_url, emulator.url), "db", "upgrade").returncode == 0

    result = subprocess.run([sys.executable, "-m", "flask", "sweep", "--dry-run"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sweep at ") and "would remind 0" in result.stdout
