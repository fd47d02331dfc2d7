"""Alembic environment: one transaction, serialized across replicas by a lock.

Every replica migrates at start. On PostgreSQL the whole upgrade runs in one
transaction that first takes ``pg_advisory_xact_lock``: the first replica
migrates, the others wait, then find the schema at head and do nothing. A
transaction-level lock is released at commit, so it is also safe behind a
transaction-mode PgBouncer (where session locks are not).
"""
from alembic import context
from flask import current_app
from sqlalchemy import create_engine, pool, text

from models.base import UTCDateTime
from settings import settings_of

# Any constant both old and new deployments agree on.
MIGRATION_LOCK_KEY = 0x6D656D62657273  # "members"

config = context.config
target_db = current_app.extensions["migrate"].db
settings = settings_of(current_app)


def migration_url():
    """DATABASE_UNPOOLED_URL when set (direct to PostgreSQL), else the app's URL."""
    if settings.is_local:
        return target_db.engine.url  # already resolved under instance/
    return settings.migration_database_url


def run_migrations_offline():
    context.configure(url=str(migration_url()), target_metadata=target_db.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def render_item(type_, obj, autogen_context):
    """Migrations use plain SQLAlchemy types, never the app's own classes."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def skip_empty_autogenerate(context_, revision, directives):
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []


def run_migrations_online():
    # Its own engine: no per-transaction statement_timeout from the app's
    # engine, and no pooled connection left behind in the gunicorn master.
    engine = create_engine(migration_url(), poolclass=pool.NullPool)
    configure_args = dict(current_app.extensions["migrate"].configure_args)
    configure_args.setdefault("process_revision_directives", skip_empty_autogenerate)
    configure_args.setdefault("compare_type", True)
    configure_args.setdefault("render_item", render_item)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_db.metadata,
                **configure_args,
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
