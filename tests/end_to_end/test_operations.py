"""Operations against the real stack: gunicorn from the Procfile, JSON logs, stack dumps, startup outages."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import port_for
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from stack_harness.bot_env import BOT_TOKEN, make_env
from stack_harness.real_server import REPO, flask_cli, post_raw, running_server
from tests.helpers import command, wait_until

pytestmark = pytest.mark.timeout(180)

STUCK_USER = 777
STUCK_UPDATE = 880001


def pool_gauge(server) -> list:
    body = requests.get(f"{server.url}/metrics", timeout=5).text
    family = next(f for f in text_string_to_metric_families(body) if f.name == "bot_db_pool_checked_out")
    return family.samples


def json_lines(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.strip()]


def test_stacks_command_dumps_every_worker_with_the_update_in_flight(pg_database_url, emulator):
    with running_server(pg_database_url, emulator, RAILWAY_ENVIRONMENT="production",
                        DB_STATEMENT_TIMEOUT_MS="20000") as server:
        workers = server.wait_for_workers(2)
        assert post_raw(server, command(STUCK_UPDATE - 1, STUCK_USER, "/help")).status_code == 200
        locker = create_engine(pg_database_url).connect()
        try:
            # Hold the user's row: the next update from this user waits inside its transaction.
            locker.execute(text("SELECT 1 FROM users WHERE id = :id FOR UPDATE"), {"id": STUCK_USER})
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(post_raw, server, command(STUCK_UPDATE, STUCK_USER, "/status"), 30)
                wait_until(lambda: locker.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()")).scalar(), timeout=15, message="the update to wait on the lock")
                samples = pool_gauge(server)
                assert len(samples) == 1 and not samples[0].labels, "livesum: one series for the whole server"
                assert samples[0].value >= 1, "the waiting request holds a pooled connection"

                since = len(server.log_text())
                result = flask_cli({**server.env}, "stacks")
                assert result.returncode == 0, result.stderr
                assert all(str(pid) in result.stdout for pid in workers)
                for pid in workers:
                    server.wait_for_log(rf'"message": "stack dump \(SIGUSR2\) of worker {pid}', since=since)
                locker.rollback()
                assert pending.result(30).status_code == 200
        finally:
            locker.close()
        assert server.worker_pids() == workers and server.running, "no re-exec, no worker lost"
        lines = json_lines(server.log_text())  # every line of the server's log is one JSON object
        dumps = [line for line in lines if line["message"].startswith("stack dump (SIGUSR2)")]
        assert len(dumps) == 2
        assert any(re.search(rf"handling update_id={STUCK_UPDATE} for \d", dump["message"]) for dump in dumps)
        assert {"Starting gunicorn 27.0.1", } <= {line["message"] for line in lines if line["logger"] == "gunicorn.error"}
        assert any(line["message"].startswith("Booting worker with pid") for line in lines)
        starting = next(line["message"] for line in lines if line["message"].startswith("starting: "))
        assert f"control socket {server.control_socket}" in starting
        warnings = [line for line in lines if line["message"].startswith("CHECK YOUR SETTINGS")]
        assert [(w["level"], w["message"]) for w in warnings] == [
            ("WARNING", "CHECK YOUR SETTINGS: PLANS is not set: selling the demo plans at demo prices")]
        assert BOT_TOKEN not in server.log_text() and BOT_TOKEN.split(":")[1] not in server.log_text()


def test_the_database_down_at_start_is_one_line_not_a_traceback(tmp_path, emulator):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
           **make_env("postgresql://bot@127.0.0.1:9/bot", emulator.url),
           "PORT": str(port_for.select_random()), "DB_WAIT_AT_START_SECONDS": "1"}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "main:app"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    fatal = [line for line in output.splitlines() if "not starting" in line]
    assert len(fatal) == 1 and "database unreachable after 1s (DB_WAIT_AT_START_SECONDS=1)" in fatal[0], output
    assert len([line for line in output.splitlines() if "database not reachable yet" in line]) == 1
