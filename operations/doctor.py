"""``flask --app main doctor``: the whole setup checked in one place, one line per check.

Each check says ``ok``, ``warn`` (works, but an owner should know) or
``FAIL`` (something a buyer or Telegram will run into); the command exits
non-zero when any check fails. Telegram is asked with no database
connection open, and the database check holds one connection only for its
own two reads.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import text

from bot_outbox.client import BotApiClient, TelegramError, TelegramUnavailable
from database.errors import describe_error
from database.migrations import schema_state
from models.base import db
from settings import HEALTH_PROBE_CONNECTIONS, Settings, settings_of

OK, WARN, FAIL = "ok", "warn", "FAIL"
READ_TIMEOUT = 5.0  # seconds for each Bot API answer: a doctor should not hang
RECENT_ERROR_SECONDS = 3600  # a webhook error younger than this is a current problem
PENDING_WARNING = 100  # updates Telegram holds for us beyond which delivery is falling behind
NEEDED_RIGHTS = ("can_invite_users", "can_restrict_members")  # invite links; removing expired members


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


@dataclass(frozen=True)
class DatabaseFacts:
    """What the database check learned, for the budget check after it."""

    max_connections: int | None = None
    reserved: int = 0


def run(app: Flask) -> list[Check]:
    """Every check, in the app context the command runs in."""
    settings = settings_of(app)
    client = app.extensions["telegram_client"]
    checks = [*_telegram_checks(client, settings), _plans(settings), _admins(settings)]
    database_checks, facts = _database_checks()
    return [*checks, *database_checks, _budget(settings, facts)]


# --- Telegram ----------------------------------------------------------------------------------


def _telegram_checks(client: BotApiClient, settings: Settings) -> list[Check]:
    if not settings.bot_token:
        return [Check("bot", FAIL, "BOT_TOKEN is not set")]
    try:
        me = client.call("getMe", read_timeout=READ_TIMEOUT)
    except (TelegramError, TelegramUnavailable) as error:
        return [Check("bot", FAIL, f"getMe failed: {error} (is BOT_TOKEN right?)")]
    bot = Check("bot", OK, f"@{me.get('username')} (id {me['id']})")
    return [bot, _channel(client, settings, me["id"]), _webhook(client, settings)]


def _channel(client: BotApiClient, settings: Settings, bot_id: int) -> Check:
    if settings.channel_id is None:
        return Check("channel", FAIL, "CHANNEL_ID is not set")
    try:
        member = client.call("getChatMember", {"chat_id": settings.channel_id, "user_id": bot_id},
                             read_timeout=READ_TIMEOUT)
    except (TelegramError, TelegramUnavailable) as error:
        return Check("channel", FAIL, f"CHANNEL_ID={settings.channel_id}: {error} "
                                      "(add the bot to the channel as an administrator)")
    status = member.get("status")
    if status == "creator":
        return Check("channel", OK, f"the bot owns {settings.channel_id}")
    if status != "administrator":
        return Check("channel", FAIL, f"the bot is {status!r} in {settings.channel_id}, not an administrator: "
                                      f"make it one with {' and '.join(NEEDED_RIGHTS)}")
    missing = [right for right in NEEDED_RIGHTS if not member.get(right)]
    if missing:
        return Check("channel", FAIL, f"the bot administers {settings.channel_id} but lacks {', '.join(missing)}")
    return Check("channel", OK, f"administrator of {settings.channel_id} with {', '.join(NEEDED_RIGHTS)}")


def _webhook(client: BotApiClient, settings: Settings) -> Check:
    try:
        info = client.call("getWebhookInfo", read_timeout=READ_TIMEOUT)
    except (TelegramError, TelegramUnavailable) as error:
        return Check("webhook", FAIL, f"getWebhookInfo failed: {error}")
    url, pending = info.get("url") or "", info.get("pending_update_count", 0)
    error, error_date = info.get("last_error_message"), info.get("last_error_date")
    facts = f"url={url or '(none)'} pending_update_count={pending} last_error_message={error or '(none)'}"
    if not url:
        return Check("webhook", FAIL, f"{facts}: no webhook set (flask --app main set-webhook)")
    expected = f"https://{settings.public_domain}/webhook" if settings.public_domain else None
    if expected and url != expected:
        return Check("webhook", FAIL, f"{facts}: expected {expected}")
    if error and error_date and time.time() - error_date < RECENT_ERROR_SECONDS:
        return Check("webhook", FAIL, f"{facts} ({time.time() - error_date:.0f}s ago)")
    if error or pending > PENDING_WARNING:
        return Check("webhook", WARN, facts)
    return Check("webhook", OK, facts)


# --- settings ----------------------------------------------------------------------------------


def _plans(settings: Settings) -> Check:
    described = ", ".join(f"{plan.id} {plan.stars} Stars/{plan.days}d{' recurring' if plan.recurring else ''}"
                          for plan in settings.plans)
    if settings.plans_are_demo:
        return Check("plans", WARN if settings.is_local else FAIL,
                     f"PLANS is not set: the demo plans are on sale ({described})")
    return Check("plans", OK, described)


def _admins(settings: Settings) -> Check:
    if not settings.admin_ids:
        return Check("admins", WARN, "ADMIN_IDS is not set: nobody can use /stats, /grant, /revoke or /refund")
    return Check("admins", OK, ", ".join(str(admin) for admin in sorted(settings.admin_ids)))


# --- the database ------------------------------------------------------------------------------


def _database_checks() -> tuple[list[Check], DatabaseFacts]:
    try:
        with db.engine.connect() as connection:
            started = time.monotonic()
            connection.execute(text("SELECT 1"))
            latency_ms = (time.monotonic() - started) * 1000
            schema = schema_state(connection)
            facts = _server_limits(connection)
    except Exception as error:  # the doctor reports; it does not crash
        return [Check("database", FAIL, describe_error(error)),
                Check("schema", FAIL, "not checked: the database is unreachable")], DatabaseFacts()
    reachable = Check("database", OK, f"{db.engine.url.render_as_string(hide_password=True)} "
                                      f"answered in {latency_ms:.1f} ms")
    if schema.at_head:
        return [reachable, Check("schema", OK, f"at head {', '.join(schema.heads)}")], facts
    current = ", ".join(schema.current) or "empty (never migrated)"
    return [reachable, Check("schema", FAIL, f"at {current}, head is {', '.join(schema.heads)}: "
                                             "run flask --app main migrate")], facts


def _server_limits(connection) -> DatabaseFacts:
    if connection.dialect.name != "postgresql":
        return DatabaseFacts()
    max_connections = int(connection.execute(text("SHOW max_connections")).scalar())
    reserved = int(connection.execute(text("SHOW superuser_reserved_connections")).scalar())
    return DatabaseFacts(max_connections, reserved)


def _budget(settings: Settings, facts: DatabaseFacts) -> Check:
    arithmetic = (f"{settings.web_concurrency} workers x ({settings.pool_size} pool + {settings.max_overflow} "
                  f"overflow + {HEALTH_PROBE_CONNECTIONS} health probe) = {settings.connections_needed} "
                  f"of DB_MAX_CONNECTIONS={settings.db_max_connections}")
    if facts.max_connections is None or settings.db_pooled:
        return Check("connections", OK, arithmetic)
    usable = facts.max_connections - facts.reserved
    server = f"PostgreSQL allows {facts.max_connections} - {facts.reserved} reserved = {usable}"
    if settings.connections_needed > usable:
        return Check("connections", FAIL, f"{arithmetic}; {server}")
    if 2 * settings.db_max_connections > usable:
        return Check("connections", WARN, f"{arithmetic}; {server}, less than 2 x DB_MAX_CONNECTIONS for "
                                          "the old and new deployments during a deploy overlap")
    return Check("connections", OK, f"{arithmetic}; {server}, room for a deploy overlap")
