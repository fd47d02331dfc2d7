"""The real server behind a real PgBouncer in transaction mode, as Railway runs it.

PgBouncer (Debian's ``pgbouncer``, stack_harness/pgbouncer.py) sits in front
of the suite's throwaway cluster; gunicorn starts from the Procfile line.
"""
from __future__ import annotations

import subprocess
import sys

import port_for
import psycopg2
import pytest
import requests
from sqlalchemy import text
from sqlalchemy.engine import make_url

from models.base import db
from stack_harness.bot_env import make_env
from stack_harness.pgbouncer import PgBouncer
from stack_harness.real_server import REPO, running_server
from tests.helpers import build_app, wait_until
from tests.membership.flows import buy, invite_message, link_in
from worker_process import lifecycle

pytestmark = pytest.mark.timeout(180)


def database_name(url: str) -> str:
    return make_url(url).database


def start_line(server) -> str:
    return server.wait_for_log(r"^.*database: .*$").group(0)


def gunicorn_fails(tmp_path, env: dict[str, str]) -> tuple[list[str], str]:
    """Start the Procfile's gunicorn expecting it to stop at start: its 'not starting' lines and whole output."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
           "PORT": str(port_for.select_random()), **env}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "main:app"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    return [line for line in output.splitlines() if "not starting" in line], output


def test_pooled_server_migrates_direct_and_sells_through_pgbouncer(pg_database_url, pgbouncer, emulator):
    name = database_name(pg_database_url)
    # PgBouncer refuses this database until the server is up: its migrations can only have gone direct.
    pgbouncer.admin(f"DISABLE {name}")
    with running_server(pgbouncer.url(name), emulator, DATABASE_UNPOOLED_URL=pg_database_url,
                        DB_WAIT_AT_START_SECONDS="0") as server:
        line = start_line(server)
        assert "through a transaction-mode pooler (DATABASE_UNPOOLED_URL is set)" in line
        assert "migrations on DATABASE_UNPOOLED_URL" in line
        assert "CHECK YOUR SETTINGS: DATABASE_URL goes through" not in server.log_text()
        with psycopg2.connect(pg_database_url.replace("+psycopg2", "")) as direct, direct.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM alembic_version")
            assert cursor.fetchone() == (1,)
        pgbouncer.admin(f"ENABLE {name}")

        paid = buy(emulator, 4101)
        assert paid.ok
        invite = invite_message(emulator, 4101)
        assert emulator.join_via_link(emulator.user(4101), link_in(invite)).joined
        assert requests.get(f"{server.url}/health", timeout=5).status_code == 200
        pools = [pool for pool in pgbouncer.admin("SHOW POOLS") if pool["database"] == name]
        assert pools and pools[0]["pool_mode"] == "transaction"
    assert "unsupported startup parameter" not in pgbouncer.log_text()


def test_timeouts_are_per_transaction_and_leave_nothing_in_the_session(pg_database_url, pgbouncer, emulator):
    """The server's transaction sees its statement_timeout; the next client on the same
    server connection does not: SET LOCAL, not SET, so no session state leaks through the pooler."""
    name = database_name(pg_database_url)
    env = make_env(pgbouncer.url(name), emulator.url, DATABASE_UNPOOLED_URL=pg_database_url,
                   DB_STATEMENT_TIMEOUT_MS="1700")
    app = build_app(env, background=False)
    try:
        with app.app_context():
            assert db.session.execute(text("SHOW statement_timeout")).scalar() == "1700ms"
            backend = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
            db.session.commit()  # PgBouncer hands the server connection back to its pool
        seen = {}

        def a_plain_client_gets(backend_pid: int) -> bool:
            with psycopg2.connect(pgbouncer.dsn(name)) as plain, plain.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid(), current_setting('statement_timeout')")
                pid, timeout = cursor.fetchone()
            plain.close()
            seen[pid] = timeout
            return pid == backend_pid

        wait_until(lambda: a_plain_client_gets(backend), timeout=10, message="the server's backend, reused")
        assert seen[backend] == "0", "the server's statement_timeout stayed on the server connection"
    finally:
        lifecycle.shutdown(app)


def test_a_pooler_looking_url_alone_is_detected(pg_database_url, pgbouncer, emulator):
    """No DATABASE_UNPOOLED_URL (the reference Railway needs was forgotten): the host's name says pooler."""
    url = pgbouncer.url(database_name(pg_database_url), host="pgbouncer")  # libpq's hostaddr: still 127.0.0.1
    with running_server(url, emulator) as server:
        line = start_line(server)
        assert "through a transaction-mode pooler (DATABASE_URL's host pgbouncer)" in line
        assert "MIGRATIONS THROUGH THE POOLER" in line
        assert "CHECK YOUR SETTINGS: DATABASE_URL goes through a transaction-mode pooler" in server.log_text()
        assert buy(emulator, 4201).ok
        invite_message(emulator, 4201)
        assert requests.get(f"{server.url}/health", timeout=5).status_code == 200
    assert "unsupported startup parameter" not in pgbouncer.log_text()


def test_forced_direct_through_pgbouncer_stops_with_one_line(tmp_path, pg_database_url, pgbouncer, emulator):
    env = make_env(pgbouncer.url(database_name(pg_database_url)), emulator.url, DB_POOLED="false")
    fatal, output = gunicorn_fails(tmp_path, env)
    assert len(fatal) == 1, output
    assert "refused the timeouts sent as startup options" in fatal[0] and "set DB_POOLED=true" in fatal[0]
    assert "database not reachable yet" not in output  # no waiting: waiting would not change it


def test_a_pooler_that_drops_the_startup_options_stops_the_server_with_one_line(
        tmp_path, pg_cluster, pg_database_url, pgbouncer, emulator):
    """PgBouncer told to ignore ``options`` accepts the connection and runs it without time limits."""
    with PgBouncer(pg_cluster, ignore_startup_parameters="options") as lenient:
        env = make_env(lenient.url(database_name(pg_database_url)), emulator.url)
        fatal, output = gunicorn_fails(tmp_path, env)
    assert len(fatal) == 1, output
    assert "dropped the timeouts sent as startup options (statement_timeout is 0, not 2000 ms)" in fatal[0]
