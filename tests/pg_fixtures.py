"""pytest plugin: throwaway PostgreSQL for the suite (enable with
``pytest_plugins = ["tests.pg_fixtures"]`` in the root conftest).

* ``pg_cluster`` (session): one private server for the whole run.
* ``pg_database_url`` (function): a fresh empty database on it per test,
  force-dropped afterwards, as a ``postgresql+psycopg2://`` URL.
* ``fault_cluster`` (function): a private server per test with a database
  ``bot``, for tests that stop, kill, freeze or reconfigure PostgreSQL.

None of them touches the machine's shared server. See ``stack_harness/pg_cluster.py``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from stack_harness.pg_cluster import PgCluster

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
