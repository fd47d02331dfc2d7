"""pytest plugin: throwaway PostgreSQL for the suite (enable with
``pytest_plugins = ["tests.pg_fixtures"]`` in the root conftest).

* ``pg_cluster`` (session): one private server for the whole run.
* ``pg_database_url`` (function): a fresh empty database on it per test,
  force-dropped afterwards, as a ``postgresql+psycopg2://`` URL.
* ``fault_cluster`` (function): a private server per test with a database
  ``bot``, for tests that stop, kill, freeze or reconfigure PostgreSQL.
* ``pgbouncer`` (function): Debian's PgBouncer in transaction mode in front
  of ``pg_cluster`` (``stack_harness/pgbouncer.py``); skipped, with the one
  line that says why, where ``pgbouncer`` is not installed.

None of them touches the machine's shared server. See ``stack_harness/pg_cluster.py``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from stack_harness.pg_cluster import PgCluster
from stack_harness.pgbouncer import PgBouncer, PgBouncerNotFound, find_pgbouncer

FAULT_DATABASE = "bot"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The suite's shared throwaway server. Tests must not stop or freeze it:
    use ``fault_cluster`` for that."""
    with PgCluster() as cluster:
        yield cluster


def _database_name(test_name: str) -> str:
    """A readable, unique, valid identifier (max 63 bytes) for the test's database."""
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")[:40]
    return f"t_{slug}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pg_database_url(pg_cluster: PgCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new empty database for this test; dropped after it even if connections
    are still open (a leaked pool must not break the next test)."""
    name = pg_cluster.create_database(_database_name(request.node.name))
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


@pytest.fixture
def fault_cluster() -> Iterator[PgCluster]:
    """A server of this test's own, with database ``bot`` (``fault_cluster.url("bot")``).
    Torn down afterwards whatever state the test left it in, frozen included."""
    with PgCluster() as cluster:
        cluster.create_database(FAULT_DATABASE)
        yield cluster


@pytest.fixture
def pgbouncer(pg_cluster: PgCluster) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the suite's server: ``pgbouncer.url(dbname)``
    goes through it to any database of ``pg_cluster``. Stopped afterwards whatever happened."""
    try:
        find_pgbouncer()
    except PgBouncerNotFound as missing:
        pytest.skip(str(missing))
    with PgBouncer(pg_cluster) as bouncer:
        yield bouncer
