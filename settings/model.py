"""The server's settings: one frozen, validated value passed down from the factory.

Made once by :func:`settings.load_settings` at process start. The connection
budget is derived here, so the factory, gunicorn.conf.py and the benchmarks
size pools from the same figures.
"""
from __future__ import annotations

from dataclasses import dataclass

from settings.plans import Plan

LOCAL_DATABASE_FILE = "bot.sqlite3"

DEFAULT_SUPPORT_TEXT = (
    "Questions about a payment go to this bot's admins, not to Telegram's support. Describe the problem "
    "in a message here and quote the charge id below; the admins have been told and will answer.")
DEFAULT_TERMS_TEXT = (
    "You buy access to a private channel for the period of your plan, paid in Telegram Stars. "
    "A subscription renews every 30 days until you cancel it in Telegram; access lasts to the end of "
    "the period paid for. Refunds are at the admins' discretion (/paysupport); a refund ends the access "
    "it paid for. Leaving the channel does not end a membership: /link lets you back in.")

# Connections a worker keeps beside its request threads, for its own
# background work (outbox senders, the sweep timer). Background threads take a
# slot from a semaphore of this size before touching the database, so request
# threads never queue behind them for a pooled connection.
BACKGROUND_CONNECTIONS = 2
# Each worker's /health probe has its own one-connection engine.
HEALTH_PROBE_CONNECTIONS = 1
# The most Bot API calls one outbox job may make, each followed by a database
# transaction: the longest runner today makes two (an invite creates a link,
# saves it, sends it and records that), so this leaves room. A job's lease is
# renewed for at most that long (``Settings.outbox_runner_seconds``), so a
# runner stuck for good frees its job instead of holding it forever.
OUTBOX_CALLS_PER_RUNNER = 4


def db_client_timeout_for(statement_timeout_ms: int) -> float:
    """Seconds any one database round trip may take before the client gives up.

    Longer than statement_timeout, so it only fires when the server itself
    has stopped answering (database/deadline.py)."""
    return statement_timeout_ms / 1000 + 1.0


@dataclass(frozen=True)
class Settings:
    bot_token: str
    webhook_secret: str
    database_url: str
    migration_database_url: str
    # DATABASE_URL goes through a transaction-mode pooler (PgBouncer): no
    # startup options, no session state; timeouts are then set per transaction.
    db_pooled: bool = False
    db_pooled_by: str = ""  # what decided db_pooled: DB_POOLED, DATABASE_UNPOOLED_URL or the URL's look
    telegram_api_url: str = "https://api.telegram.org"
    port: int = 8000
    web_concurrency: int = 2
    gunicorn_threads: int = 4
    channel_id: int | None = None
    admin_ids: frozenset[int] = frozenset()
    plans: tuple[Plan, ...] = ()
    db_max_connections: int = 20
    db_pool_timeout: float = 3.0
    db_pool_recycle: int = 300
    db_connect_timeout: int = 2
    db_statement_timeout_ms: int = 2000
    db_idle_in_transaction_timeout_ms: int = 10000
    telegram_connect_timeout: float = 3.05
    telegram_read_timeout: float = 10.0
    outbox_senders: int = 4
    outbox_lease_seconds: int = 10
    outbox_heartbeat_seconds: float = 2.0
    outbox_max_per_second: float = 25.0
    outbox_chat_interval_ms: int = 1000
    flood_limit_per_minute: int = 30
    reply_via_webhook_response: bool = True
    outbox_poll_seconds: float = 2.0
    watchdog_threshold_seconds: float = 30.0
    gunicorn_timeout: int = 30
    max_requests: int = 100000
    control_socket: str = "gunicorn-bot.ctl"  # gunicorn's control socket (loading fills in the real path)
    log_level: str = "INFO"
    log_format: str = "text"  # text | json (one object per line on stdout, Railway's default)
    metrics_token: str | None = None  # /metrics wants "Authorization: Bearer <token>" when set
    public_domain: str | None = None  # RAILWAY_PUBLIC_DOMAIN: where set-webhook points by default
    on_railway: bool = False
    plans_are_demo: bool = False  # PLANS unset: the demo prices are on sale
    db_wait_at_start_seconds: float = 60.0  # how long start-up migrations wait for the database
    metrics_dir: str | None = None  # prometheus-client multiprocess directory (gunicorn.conf.py sets it)
    payload_secret: bytes = b""  # signs new invoice payloads
    payload_previous_keys: tuple[bytes, ...] = ()  # still verify payloads made before a key change
    invite_ttl_hours: int = 24
    reminder_days: int = 3
    removal_grace_hours: int = 12
    never_remove_ids: frozenset[int] = frozenset()
    sweep_interval_seconds: int = 300
    reconcile_interval_seconds: int = 3600
    # /paysupport and /terms (Telegram asks every bot that takes payments for both): text or a URL.
    support_text: str = DEFAULT_SUPPORT_TEXT
    terms_text: str = DEFAULT_TERMS_TEXT
    # Local sandbox mode (settings/sandbox.py): no BOT_TOKEN on the embedded
    # SQLite database, so Telegram is the emulator the gunicorn master starts.
    local_sandbox: bool = False
    sandbox_telegram_port: int | None = None
    # Names this machine in an outbox job's owner (with the master's and the
    # worker's pids): RAILWAY_REPLICA_ID, else the host name.
    replica_id: str = ""

    def plan(self, plan_id: str) -> Plan | None:
        return next((plan for plan in self.plans if plan.id == plan_id), None)

    @property
    def payload_keys(self) -> tuple[bytes, ...]:
        """Every key an invoice payload may be signed with, the current one first."""
        return (self.payload_secret, *self.payload_previous_keys)

    @property
    def is_local(self) -> bool:
        """The embedded SQLite database, for trying the server out (with a BOT_TOKEN or in the sandbox)."""
        return self.database_url.startswith("sqlite")

    @property
    def db_client_timeout(self) -> float:
        return db_client_timeout_for(self.db_statement_timeout_ms)

    @property
    def outbox_runner_seconds(self) -> float:
        """The longest an outbox job may run: each of its calls at its timeouts, each followed by a transaction."""
        one_step = self.telegram_connect_timeout + self.telegram_read_timeout + self.db_client_timeout
        return OUTBOX_CALLS_PER_RUNNER * one_step

    @property
    def pool_wanted(self) -> int:
        """A connection per request thread and per background slot: no thread ever waits for one."""
        return self.gunicorn_threads + BACKGROUND_CONNECTIONS

    @property
    def pool_size(self) -> int:
        """What a worker gets: what it wants, or its share of the budget when that is less.

        Threads may share connections: a transaction lasts milliseconds, and
        the pool timeout covers a thread that finds them all in use.
        """
        share = self.db_max_connections // self.web_concurrency - HEALTH_PROBE_CONNECTIONS
        return max(0, min(self.pool_wanted, share))

    @property
    def background_slots(self) -> int:
        """Background work never takes the last connection from the request threads."""
        return max(1, min(BACKGROUND_CONNECTIONS, self.pool_size - 1))

    @property
    def max_overflow(self) -> int:
        # Overflow connections would be invisible to the budget: none.
        return 0

    @property
    def connections_per_worker(self) -> int:
        return self.pool_size + self.max_overflow + HEALTH_PROBE_CONNECTIONS

    @property
    def connections_needed(self) -> int:
        return self.web_concurrency * self.connections_per_worker

    @property
    def log_secrets(self) -> list[str]:
        """Values no log line may show: the token (and its secret half alone), the webhook and metrics secrets."""
        token_secret = self.bot_token.partition(":")[2]
        return [value for value in (self.bot_token, token_secret, self.webhook_secret, self.metrics_token) if value]

    def start_warnings(self) -> list[str]:
        """What a production server may run with but an owner must hear about, once, at start."""
        if self.is_local:
            return []
        warnings = []
        if self.plans_are_demo:
            warnings.append("PLANS is not set: selling the demo plans at demo prices")
        if not self.admin_ids:
            warnings.append("ADMIN_IDS is not set: nobody can use /stats, /grant, /revoke or /refund")
        if self.migrates_through_pooler:
            warnings.append(
                f"DATABASE_URL goes through a transaction-mode pooler ({self.db_pooled_by}) and "
                "DATABASE_UNPOOLED_URL is not set: migrations and their advisory lock go through the pooler; "
                "reference DATABASE_UNPOOLED_URL in the service's variables")
        return warnings

    @property
    def migrates_through_pooler(self) -> bool:
        return self.db_pooled and not self.is_local and self.migration_database_url == self.database_url

    def describe_database(self) -> str:
        """How the server talks to its database, for the log line at start."""
        if self.is_local:
            return "database: embedded SQLite (local mode)"
        if not self.db_pooled:
            forced = " (DB_POOLED=false)" if self.db_pooled_by else ""
            return f"database: direct to PostgreSQL{forced}: timeouts as startup options"
        migrations = ("MIGRATIONS THROUGH THE POOLER (no DATABASE_UNPOOLED_URL)" if self.migrates_through_pooler
                      else "migrations on DATABASE_UNPOOLED_URL")
        return (f"database: through a transaction-mode pooler ({self.db_pooled_by}): "
                f"timeouts set per transaction, {migrations}")

    def describe_pool(self) -> str:
        """The budget arithmetic, for the log line at start."""
        shared = "" if self.pool_size >= self.pool_wanted else \
            f" (of {self.pool_wanted} wanted: {self.gunicorn_threads} threads share them)"
        return (
            f"workers={self.web_concurrency} threads={self.gunicorn_threads} "
            f"pool_size={self.pool_size}{shared} background_slots={self.background_slots} "
            f"health_probe={HEALTH_PROBE_CONNECTIONS}: {self.web_concurrency} x ({self.pool_size} + "
            f"{HEALTH_PROBE_CONNECTIONS}) = {self.connections_needed} of DB_MAX_CONNECTIONS={self.db_max_connections}"
        )
