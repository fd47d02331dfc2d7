"""Several replicas of the server on one database, started at the same moment.

Railway runs N replicas of the Procfile's web process against one
PostgreSQL; a deploy starts them together, so each migrates at start while
the others do. ``running_replicas`` reproduces that on this machine: every
replica is a real gunicorn (``GunicornServer``) with its own port, its own
``RAILWAY_REPLICA_ID`` and its share of the connection budget, all launched
before any is waited for. Telegram (the emulator) delivers to the first;
tests post to the others themselves, as Railway's load balancer spreads
Telegram's deliveries (and redeliveries) over the replicas.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

from settings.model import Settings
from stack_harness.bot_env import make_env
from stack_harness.gunicorn_server import GunicornHarnessError, GunicornServer
from stack_harness.real_server import REPO, flask_cli

REPLICA_NAMES = ("replica-a", "replica-b")
# What a replica runs unless the test says otherwise: small, so two fit on two cores.
REPLICA_SHAPE = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4"}


def budget_share(replicas: int, total: int = Settings.db_max_connections) -> str:
    """Each server sizes its pools against its own DB_MAX_CONNECTIONS: give each its share of
    the database's budget, or together they would open ``replicas`` times what it allows."""
    return str(total // replicas)


def replica_env(database_url: str, api_url: str, name: str, replicas: int, **settings: str) -> dict[str, str]:
    """One replica's environment: the shared settings, its name, its share of the budget."""
    shape = {**REPLICA_SHAPE, "DB_MAX_CONNECTIONS": budget_share(replicas), "RAILWAY_REPLICA_ID": name}
    return make_env(database_url, api_url, **{**shape, **settings})


def start_together(servers: Sequence[GunicornServer], timeout: float = 60.0) -> None:
    """Launch every server before waiting for any, so their start-up (migrations included) overlaps.

    ``GunicornServer.start`` launches and then waits; one thread per server
    runs them side by side. A server that fails stops itself; the caller
    closes the rest.
    """
    with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="replica-start") as pool:
        starts = [pool.submit(server.start, timeout=timeout) for server in servers]
        for started in starts:
            started.result()


def point_webhook_at(server: GunicornServer) -> None:
    """Telegram has one webhook URL per bot: register the given replica's."""
    result = flask_cli(server.env, "set-webhook", f"{server.url}/webhook")
    if result.returncode != 0:
        raise GunicornHarnessError(f"set-webhook failed: {result.stderr}")


@contextmanager
def replica_servers(database_url: str, emulator, names: Sequence[str] = REPLICA_NAMES,
                    **settings: str) -> Iterator[list[GunicornServer]]:
    """The replicas, configured but not started (for a test that starts them its own way); all
    stopped and cleaned up on exit, whatever happened."""
    with ExitStack() as stack:
        yield [stack.enter_context(_closing(GunicornServer(
            REPO, replica_env(database_url, emulator.url, name, len(names), **settings)))) for name in names]


@contextmanager
def running_replicas(database_url: str, emulator, names: Sequence[str] = REPLICA_NAMES,
                     **settings: str) -> Iterator[list[GunicornServer]]:
    """Every replica started at once on ``database_url``, Telegram's webhook on the first."""
    with replica_servers(database_url, emulator, names, **settings) as servers:
        start_together(servers)
        point_webhook_at(servers[0])
        yield servers


@contextmanager
def _closing(server: GunicornServer) -> Iterator[GunicornServer]:
    """Close (stop and delete the temp dir) on exit; ``GunicornServer`` as a context manager would also start it."""
    try:
        yield server
    finally:
        server.close()
