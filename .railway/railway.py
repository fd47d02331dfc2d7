"""Railway Infrastructure as Code (successor of railway.json, which Railway stops reading on 2026-12-01).

The server needs only its start command: it migrates its own schema at start
(serialized across replicas) and runs its timers in-process. The pre-deploy
migration below is the same idempotent step run earlier, so a broken
migration stops the deploy before traffic moves.

Applying this file deletes every variable of the service that it does not
declare, so every setting the server reads (settings/loading.py) is declared
here: secrets and the owner's own values with ``preserve()`` (kept as set in
the dashboard, never written here), references to the database, and the
few sizes this file decides. Only what Railway itself sets is left out
(``PROVIDED_BY_RAILWAY``). tests/test_deploy_config.py keeps this true.
"""
from railway_sdk import define_railway, postgres, preserve, project, service

START = "gunicorn -c gunicorn.conf.py main:app"  # the Procfile's web line

# Railway sets these in every deployment; declaring them would shadow its values.
PROVIDED_BY_RAILWAY = ("PORT", "RAILWAY_ENVIRONMENT", "RAILWAY_DEPLOYMENT_ID", "RAILWAY_PUBLIC_DOMAIN", "RAILWAY_REPLICA_ID")

# Set in the dashboard (secrets and the owner's business), kept as they are.
SECRETS = ("BOT_TOKEN", "WEBHOOK_SECRET", "PAYLOAD_SECRET", "PAYLOAD_SECRET_PREVIOUS", "METRICS_TOKEN")
OWNER_SETTINGS = ("CHANNEL_ID", "ADMIN_IDS", "PLANS", "NEVER_REMOVE_IDS", "SUPPORT_TEXT", "TERMS_TEXT")
# Tuning with sound defaults in the server: unset unless an operator set one.
TUNING = (
    "DB_POOLED", "DB_POOL_TIMEOUT", "DB_STATEMENT_TIMEOUT_MS", "DB_WAIT_AT_START_SECONDS",
    "TELEGRAM_API_URL", "TELEGRAM_READ_TIMEOUT", "INVITE_TTL_HOURS", "REMINDER_DAYS", "REMOVAL_GRACE_HOURS",
    "SWEEP_INTERVAL_SECONDS", "RECONCILE_INTERVAL_SECONDS", "FLOOD_LIMIT_PER_MINUTE",
    "OUTBOX_SENDERS", "OUTBOX_MAX_PER_SECOND", "OUTBOX_CHAT_INTERVAL_MS", "OUTBOX_LEASE_SECONDS", "OUTBOX_HEARTBEAT_SECONDS",
    "REPLY_VIA_WEBHOOK_RESPONSE", "WATCHDOG_SECONDS", "GUNICORN_TIMEOUT", "MAX_REQUESTS",
    "GUNICORN_CONTROL_SOCKET", "PROMETHEUS_MULTIPROC_DIR", "LOG_LEVEL", "LOG_FORMAT",
)


@define_railway
def main(ctx=None):
    db = postgres("postgres")
    web = service(
        "web",
        build={"builder": "RAILPACK"},
        start=START,
        preDeploy="flask --app main migrate",
        healthcheck="/health",
        healthcheckTimeout=120,
        replicas=1,
        deploy={
            "restartPolicyType": "ON_FAILURE",
            "restartPolicyMaxRetries": 10,
            # Old and new deployments overlap: DB_MAX_CONNECTIONS must leave
            # room for both (see README, "Connection budget"). Draining is at
            # least gunicorn's graceful_timeout (20 s), so requests finish.
            "overlapSeconds": 20,
            "drainingSeconds": 25,
        },
        env={
            **{name: preserve() for name in SECRETS + OWNER_SETTINGS + TUNING},
            "DATABASE_URL": db.env.DATABASE_URL,
            # Reaches the service only through this reference; with PgBouncer it is
            # the direct URL (migrations, and how the server knows it is pooled).
            "DATABASE_UNPOOLED_URL": db.env.DATABASE_UNPOOLED_URL,
            "WEB_CONCURRENCY": "2",
            "GUNICORN_THREADS": "4",
            "DB_MAX_CONNECTIONS": "40",
        },
    )
    return project("telegram-membership-bot", resources=[db, web])
