"""Reading the settings from the environment once, validated, then passed down.

Nothing else in the server reads ``os.environ``: ``gunicorn.conf.py`` and
``create_app`` both call :func:`load_settings`, so a bad value fails at boot
with one line that names it, never as a traceback inside a request.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from dotenv import dotenv_values

from settings.env_values import (
    ConfigError,
    bearer_token,
    chat_id,
    choice,
    domain,
    flag,
    http_url,
    number,
    user_ids,
    whole_number,
)
from settings.model import (
    DEFAULT_SUPPORT_TEXT,
    DEFAULT_TERMS_TEXT,
    HEALTH_PROBE_CONNECTIONS,
    LOCAL_DATABASE_FILE,
    Settings,
    db_client_timeout_for,
)
from settings.plans import PlanError, parse_plans
from settings.sandbox import is_sandbox, sandbox_values

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("json", "text")
# Railway sets these in every deployment; their presence means logs are read by Railway's log view.
RAILWAY_MARKERS = ("RAILWAY_ENVIRONMENT", "RAILWAY_DEPLOYMENT_ID")
from settings.telegram import BOT_TOKEN_PATTERN, SECRET_TOKEN_PATTERN


def normalize_database_url(url: str) -> str:
    """Pin PostgreSQL URLs to psycopg2.

    Railway hands out ``postgres://``; SQLAlchemy 2.1 maps a bare
    ``postgresql://`` to psycopg 3, which is not what we install.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError("DATABASE_URL is not a URL (expected postgresql://user:pass@host/db)")
    if scheme in ("postgres", "postgresql", "postgresql+psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    if scheme.startswith("sqlite"):
        return url
    raise ConfigError(f"DATABASE_URL scheme {scheme!r} is not supported: use postgresql:// (or postgres://)")


# What a transaction-mode pooler's address usually looks like: PgBouncer's
# default port, or a host named for it (Railway's pgbouncer, Neon's -pooler,
# Supabase's pooler.supabase.com).
POOLER_PORT = 6432
POOLER_HOST_MARKS = ("pgbouncer", "pooler")


def _pooler_address(raw_url: str) -> str:
    """What in DATABASE_URL names a pooler, or "" when it looks like PostgreSQL itself."""
    try:
        parts = urlsplit(raw_url)
        port = parts.port
    except ValueError:  # a malformed port: the driver will say so in one line at connect
        return ""
    host = (parts.hostname or "").lower()
    if port == POOLER_PORT:
        return f"DATABASE_URL's port {POOLER_PORT}"
    if any(mark in host for mark in POOLER_HOST_MARKS):
        return f"DATABASE_URL's host {host}"
    return ""


def _pooling(env: Mapping[str, str], raw_db_url: str, unpooled: str) -> dict:
    """Whether DATABASE_URL goes through a transaction-mode pooler, and what says so.

    A pooler disconnects a client whose startup options carry timeouts, so
    this must be right before the first connection: DB_POOLED wins; else
    DATABASE_UNPOOLED_URL (Railway sets it exactly when PgBouncer is in
    front, but it reaches a service only where the service references it);
    else the URL's look, which still holds when that reference is missing.
    """
    if env.get("DB_POOLED", "").strip():
        return dict(db_pooled=flag(env, "DB_POOLED", False), db_pooled_by="DB_POOLED")
    if unpooled:
        return dict(db_pooled=True, db_pooled_by="DATABASE_UNPOOLED_URL is set")
    sign = _pooler_address(raw_db_url) if raw_db_url else ""
    return dict(db_pooled=bool(sign), db_pooled_by=sign)


# Below this a worker could not serve a request while its background work runs.
MIN_POOL_SIZE = 2


def _payload_keys(raw: str, previous_raw: str, bot_token: str) -> tuple[bytes, tuple[bytes, ...]]:
    """The key that signs invoice payloads, and older keys that still verify them.

    The signing key is PAYLOAD_SECRET, else one derived from the token
    (derived, not the token itself, so a signature never exposes it). Older
    keys keep invoices made before a change payable: PAYLOAD_SECRET_PREVIOUS
    during a rotation, and the token-derived key once PAYLOAD_SECRET is first
    set.
    """
    derived = hmac.new(bot_token.encode() or b"local", b"invoice-payload-v1", hashlib.sha256).digest()
    for name, value in (("PAYLOAD_SECRET", raw), ("PAYLOAD_SECRET_PREVIOUS", previous_raw)):
        if value and len(value) < 16:
            raise ConfigError(f"{name} must be at least 16 characters")
    if not raw:
        return derived, ()
    previous = (previous_raw.encode(),) if previous_raw else ()
    return raw.encode(), previous + (derived,)


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    """A message the bot sends as it is: at most 3,000 characters (Telegram allows 4,096)."""
    value = env.get(name, "").strip() or default
    if len(value) > 3000:
        raise ConfigError(f"{name} is {len(value)} characters; keep it to 3000 or give a URL")
    return value


def _check_secrets(bot_token: str, webhook_secret: str, local: bool) -> None:
    if not local:
        if not bot_token:
            raise ConfigError("BOT_TOKEN is required (from @BotFather)")
        if not webhook_secret:
            raise ConfigError("WEBHOOK_SECRET is required: 1-256 characters of A-Za-z0-9_-")
    if bot_token and not BOT_TOKEN_PATTERN.fullmatch(bot_token):
        raise ConfigError("BOT_TOKEN is malformed (expected <digits>:<letters, digits, _ or ->)")
    if webhook_secret and not SECRET_TOKEN_PATTERN.fullmatch(webhook_secret):
        raise ConfigError("WEBHOOK_SECRET must be 1-256 characters of A-Za-z0-9_- (Telegram's secret_token rule)")


def _check_channel(bot_token: str, channel: int | None) -> None:
    """A bot that can take payments must have the channel it sells, or a buyer pays for nothing."""
    if bot_token and channel is None:
        raise ConfigError(
            "CHANNEL_ID is required when BOT_TOKEN is set: the numeric id of the private channel sold "
            "(e.g. -1001234567890); without it a paid invoice would deliver no invite")


def _control_socket(env: Mapping[str, str], port: int) -> str:
    """One socket per instance: two gunicorns on one machine would otherwise take over each other's."""
    return env.get("GUNICORN_CONTROL_SOCKET") or os.path.join(tempfile.gettempdir(), f"gunicorn-bot-{port}.ctl")


def _process_environment() -> dict[str, str]:
    """The process environment over a ``.env`` file in the working directory, if there is one.

    ``flask`` loads ``.env`` itself (python-dotenv); gunicorn does not, so the
    file is read here for both, and a variable set in the environment wins.
    """
    dotenv_file = Path.cwd() / ".env"
    from_file = dotenv_values(dotenv_file) if dotenv_file.is_file() else {}
    return {**{k: v for k, v in from_file.items() if v is not None}, **os.environ}


def _outbox_lease(env: Mapping[str, str], statement_timeout_ms: int) -> dict:
    """The outbox lease and its heartbeat; the defaults pass :func:`_check_lease` whatever the database timeouts.

    A sender renews the leases of its running jobs every heartbeat, so the
    lease only has to outlast a missed renewal, not a whole job: short, so
    the jobs of a replica that died are taken up again within seconds.
    """
    slowest_renewal = db_client_timeout_for(statement_timeout_ms)
    # The smallest lease above 10 s that outlasts two heartbeats of a fifth of it and the slowest renewal.
    default_lease = max(10, math.floor(slowest_renewal * 5 / 3) + 1)
    lease = whole_number(env, "OUTBOX_LEASE_SECONDS", default_lease, 1)
    return dict(outbox_lease_seconds=lease,
                outbox_heartbeat_seconds=number(env, "OUTBOX_HEARTBEAT_SECONDS", lease / 5, 0.1))


def _check_lease(settings: Settings) -> None:
    """A running job's lease must outlast one missed renewal and the slowest next one.

    Otherwise a healthy sender could lose a job it is running, and the job's
    calls be made twice (the fence keeps its writes single, not its calls).
    The job's own length does not matter: its lease is renewed for as long as
    ``Settings.outbox_runner_seconds``, every call and transaction of it.
    """
    heartbeat = settings.outbox_heartbeat_seconds
    needed = 2 * heartbeat + settings.db_client_timeout
    if settings.outbox_lease_seconds <= needed:
        raise ConfigError(
            f"OUTBOX_LEASE_SECONDS={settings.outbox_lease_seconds} must exceed two heartbeats "
            f"(OUTBOX_HEARTBEAT_SECONDS={heartbeat:g}) plus the slowest database round trip "
            f"({settings.db_client_timeout:g}s) = {needed:g}s, or a running job's lease could lapse between renewals")


def _check_budget(settings: Settings) -> None:
    """Every shape fits the budget by sharing connections, down to two per worker."""
    if settings.is_local:
        return
    if settings.pool_size < MIN_POOL_SIZE:
        raise ConfigError(
            "connection budget exceeded: "
            f"{settings.web_concurrency} workers share DB_MAX_CONNECTIONS={settings.db_max_connections}, so each "
            f"would get {settings.db_max_connections // settings.web_concurrency} connections, "
            f"{HEALTH_PROBE_CONNECTIONS} for its health probe and {max(0, settings.pool_size)} for requests and "
            f"background work (at least {MIN_POOL_SIZE} needed); lower WEB_CONCURRENCY or raise DB_MAX_CONNECTIONS"
        )


def load_settings(env: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Build and validate settings from ``env`` (default: the process environment)."""
    env = _process_environment() if env is None else env
    raw_db_url = env.get("DATABASE_URL", "").strip()
    database_url = normalize_database_url(raw_db_url) if raw_db_url else f"sqlite:///{LOCAL_DATABASE_FILE}"
    unpooled = env.get("DATABASE_UNPOOLED_URL", "").strip()
    local = database_url.startswith("sqlite")
    bot_token = env.get("BOT_TOKEN", "").strip()
    webhook_secret = env.get("WEBHOOK_SECRET", "").strip()
    _check_secrets(bot_token, webhook_secret, local)
    channel = chat_id(env.get("CHANNEL_ID"))
    _check_channel(bot_token, channel)
    on_railway = any(env.get(marker, "").strip() for marker in RAILWAY_MARKERS)
    port = whole_number(env, "PORT", 8000, 1, 65535)
    signing_key, previous_keys = _payload_keys(env.get("PAYLOAD_SECRET", "").strip(),
                                               env.get("PAYLOAD_SECRET_PREVIOUS", "").strip(), bot_token)
    try:
        plans = parse_plans(env.get("PLANS"))
    except PlanError as exc:
        raise ConfigError(f"PLANS is invalid: {exc}") from None
    statement_timeout_ms = whole_number(env, "DB_STATEMENT_TIMEOUT_MS", 2000, 100)
    values = dict(
        bot_token=bot_token,
        webhook_secret=webhook_secret,
        database_url=database_url,
        migration_database_url=normalize_database_url(unpooled) if unpooled else database_url,
        **_pooling(env, raw_db_url, unpooled),
        telegram_api_url=http_url(env.get("TELEGRAM_API_URL", "https://api.telegram.org").strip()),
        port=port,
        web_concurrency=whole_number(env, "WEB_CONCURRENCY", 2, 1, 64),
        gunicorn_threads=whole_number(env, "GUNICORN_THREADS", 4, 1, 256),
        channel_id=channel,
        admin_ids=user_ids(env.get("ADMIN_IDS", ""), "ADMIN_IDS"),
        plans=plans,
        plans_are_demo=not env.get("PLANS", "").strip(),
        db_max_connections=whole_number(env, "DB_MAX_CONNECTIONS", 20, 1),
        db_pool_timeout=number(env, "DB_POOL_TIMEOUT", 3.0, 0.1),
        db_statement_timeout_ms=statement_timeout_ms,
        telegram_read_timeout=number(env, "TELEGRAM_READ_TIMEOUT", 10.0, 0.1),
        outbox_senders=whole_number(env, "OUTBOX_SENDERS", 4, 1, 64),
        **_outbox_lease(env, statement_timeout_ms),
        outbox_max_per_second=number(env, "OUTBOX_MAX_PER_SECOND", 25.0, 0.1),
        outbox_chat_interval_ms=whole_number(env, "OUTBOX_CHAT_INTERVAL_MS", 1000, 0),
        flood_limit_per_minute=whole_number(env, "FLOOD_LIMIT_PER_MINUTE", 30, 0),
        reply_via_webhook_response=flag(env, "REPLY_VIA_WEBHOOK_RESPONSE", True),
        watchdog_threshold_seconds=number(env, "WATCHDOG_SECONDS", 30.0, 0.1),
        gunicorn_timeout=whole_number(env, "GUNICORN_TIMEOUT", 30, 1),
        max_requests=whole_number(env, "MAX_REQUESTS", 100000, 0),
        control_socket=_control_socket(env, port),
        log_level=choice(env, "LOG_LEVEL", "info", LOG_LEVELS).upper(),
        log_format=choice(env, "LOG_FORMAT", "json" if on_railway else "text", LOG_FORMATS),
        metrics_token=bearer_token(env.get("METRICS_TOKEN"), "METRICS_TOKEN"),
        public_domain=domain(env.get("RAILWAY_PUBLIC_DOMAIN"), "RAILWAY_PUBLIC_DOMAIN"),
        on_railway=on_railway,
        db_wait_at_start_seconds=number(env, "DB_WAIT_AT_START_SECONDS", 60.0, 0.0),
        metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        payload_secret=signing_key,
        payload_previous_keys=previous_keys,
        invite_ttl_hours=whole_number(env, "INVITE_TTL_HOURS", 24, 1, 24 * 30),
        reminder_days=whole_number(env, "REMINDER_DAYS", 3, 0, 60),
        removal_grace_hours=whole_number(env, "REMOVAL_GRACE_HOURS", 12, 0, 24 * 30),
        never_remove_ids=user_ids(env.get("NEVER_REMOVE_IDS", ""), "NEVER_REMOVE_IDS"),
        sweep_interval_seconds=whole_number(env, "SWEEP_INTERVAL_SECONDS", 300, 0),
        reconcile_interval_seconds=whole_number(env, "RECONCILE_INTERVAL_SECONDS", 3600, 0),
        support_text=_text(env, "SUPPORT_TEXT", DEFAULT_SUPPORT_TEXT),
        terms_text=_text(env, "TERMS_TEXT", DEFAULT_TERMS_TEXT),
        replica_id=env.get("RAILWAY_REPLICA_ID", "").strip() or socket.gethostname(),
    )
    if is_sandbox(bot_token, database_url):
        values.update(sandbox_values(env, values["port"]))
    values.update(overrides)
    settings = Settings(**values)
    _check_budget(settings)
    _check_lease(settings)
    return settings


def load_settings_or_exit(env: Mapping[str, str] | None = None) -> Settings:
    """For process start: one clear line on stderr and exit status 2 on bad configuration."""
    try:
        return load_settings(env)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


__all__ = ["ConfigError", "Settings", "load_settings", "load_settings_or_exit", "normalize_database_url"]
