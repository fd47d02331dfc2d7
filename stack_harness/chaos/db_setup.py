"""The database side: the server's ordinary role, the slots it cannot use, its connection budget."""
from __future__ import annotations

from stack_harness.chaos.constants import DATABASE, SERVER_ROLE, WORKERS
from stack_harness.pg_cluster import PgCluster


def prepare_database(cluster: PgCluster) -> str:
    """Give database ``bot`` to an ordinary login role and return the server's URL for it.

    An ordinary role, as in production: PostgreSQL keeps its
    ``superuser_reserved_connections`` away from it, so the connection-budget
    scenario sees a real limit while the test's own (superuser) connections
    still get in.
    """
    cluster.execute(f"DO $$ BEGIN CREATE ROLE {SERVER_ROLE} LOGIN; "
                    "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    cluster.execute(f"ALTER DATABASE {DATABASE} OWNER TO {SERVER_ROLE}")
    cluster.execute(f"GRANT ALL ON SCHEMA public TO {SERVER_ROLE}", dbname=DATABASE)
    return f"postgresql://{SERVER_ROLE}@{cluster.host}:{cluster.port}/{DATABASE}"


def reserved_connection_slots(cluster: PgCluster) -> int:
    """Slots an ordinary role cannot use (superuser_reserved_connections, and reserved_connections on 16+)."""
    rows = cluster.execute("SELECT coalesce(sum(setting::int), 0) FROM pg_settings "
                           "WHERE name IN ('superuser_reserved_connections', 'reserved_connections')")
    return int(rows[0][0])


def connection_budget(env: dict[str, str]) -> int:
    """What the README promises: WEB_CONCURRENCY x (GUNICORN_THREADS + 2 background + 1 health probe)."""
    return int(env.get("WEB_CONCURRENCY", WORKERS)) * (int(env.get("GUNICORN_THREADS", 4)) + 2 + 1)
