"""``flask --app main doctor`` run as a subprocess against a throwaway PostgreSQL and the emulator."""
from __future__ import annotations

from stack_harness.bot_env import CHANNEL_ID, make_env
from stack_harness.real_server import flask_cli


def _lines(result) -> dict[str, str]:
    """check name -> its whole line."""
    return {line.split()[1].rstrip(":"): line for line in result.stdout.splitlines() if line.strip()}


def test_a_sound_setup_passes_every_check(pg_database_url, emulator):
    env = make_env(pg_database_url, emulator.url,
                   PLANS='[{"id": "month", "title": "One month", "stars": 250, "days": 30}]')
    assert flask_cli(env, "db", "upgrade").returncode == 0
    assert flask_cli(env, "set-webhook", "http://127.0.0.1:9/webhook").returncode == 0

    result = flask_cli(env, "doctor")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result)
    assert list(lines) == ["bot", "channel", "webhook", "plans", "admins", "database", "schema", "connections"]
    assert all(line.startswith("ok ") for line in lines.values()), result.stdout
    assert "@membership_test_bot" in lines["bot"]
    assert "can_invite_users, can_restrict_members" in lines["channel"]
    assert "url=http://127.0.0.1:9/webhook pending_update_count=0" in lines["webhook"]
    assert "2 workers x (6 pool + 0 overflow + 1 health probe) = 14 of DB_MAX_CONNECTIONS=20" in lines["connections"]
    assert "PostgreSQL allows" in lines["connections"]
    assert "month 250 Stars/30d" in lines["plans"]


def test_a_bot_that_is_not_an_admin_and_a_schema_behind_fail(pg_database_url, emulator):
    state = emulator.state
    state.set_status(state.chats[CHANNEL_ID], emulator.bot_user.id, "member")
    env = make_env(pg_database_url, emulator.url)  # the database is empty: never migrated

    result = flask_cli(env, "doctor")

    assert result.returncode == 1
    lines = _lines(result)
    assert len(lines) == 8, result.stdout
    assert lines["channel"].startswith("FAIL channel:") and "member list is inaccessible" in lines["channel"]
    assert lines["schema"].startswith("FAIL schema: at empty (never migrated), head is")
    assert lines["webhook"].startswith("FAIL webhook:") and "no webhook set" in lines["webhook"]
    assert lines["plans"].startswith("FAIL plans: PLANS is not set")
    assert lines["database"].startswith("ok ") and lines["bot"].startswith("ok ")


def test_an_unreachable_database_is_one_failing_line_not_a_traceback(emulator):
    env = make_env("postgresql://nobody@127.0.0.1:9/none", emulator.url)

    result = flask_cli(env, "doctor")

    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    lines = _lines(result)
    assert lines["database"].startswith("FAIL database: OperationalError")
    assert lines["schema"] == "FAIL schema: not checked: the database is unreachable"
