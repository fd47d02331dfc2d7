"""Health probes in a lane of their own: answered while every request thread is busy."""
from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import create_engine, text

from stack_harness.real_server import post_raw, running_server
from tests.helpers import command, wait_until
from worker_process.probe_lane import PEEK_BYTES, is_probe, peek

STUCK_USER = 4242


@pytest.mark.parametrize("first_bytes, probe", [
    (b"GET /health HTTP/1.1\r\n", True),
    (b"GET /health?verbose=1 HTTP/1.1", True),
    (b"HEAD /livez HTTP/1.1\r\n", True),
    (b"GET /healthz HTTP/1.1\r\n", False),
    (b"POST /health HTTP/1.1\r\n", False),
    (b"POST /webhook HTTP/1.1\r\n", False),
    (b"GET /heal", False),  # not all of the request line has arrived: the main pool takes it
    (b"", False),
])
def test_a_probe_is_known_by_its_request_line(first_bytes, probe):
    assert is_probe(first_bytes) is probe


def test_peeking_leaves_the_bytes_for_the_parser_and_tells_nothing_yet_from_closed():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert peek(ours) is None, "nothing has arrived yet"
        request = b"GET /health HTTP/1.1\r\n\r\n"
        theirs.sendall(request)
        assert peek(ours) == request[:PEEK_BYTES]
        assert ours.recv(100) == request, "peeking consumed nothing"
        theirs.close()
        assert peek(ours) == b"", "the peer closed: the pool thread will find out"


def _lock_waiters(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")).scalar()


def _raw_get(url: str, path: str, pause: float) -> bytes:
    """GET ``path`` on a new connection that sends its request only after ``pause`` seconds."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        time.sleep(pause)  # the slow client under test: connected, request not sent yet
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return b"".join(iter(lambda: connection.recv(65536), b""))


@pytest.mark.timeout(180)
def test_health_answers_while_every_request_thread_waits_on_the_database(pg_database_url, emulator):
    with running_server(pg_database_url, emulator, WEB_CONCURRENCY="1", GUNICORN_THREADS="2",
                        DB_STATEMENT_TIMEOUT_MS="30000") as server:
        assert post_raw(server, command(1, STUCK_USER, "/help")).status_code == 200
        engine = create_engine(pg_database_url)
        locker = engine.connect()
        try:
            # Hold the sender's row: each of their next updates waits inside its request thread.
            locker.execute(text("SELECT 1 FROM users WHERE id = :id FOR UPDATE"), {"id": STUCK_USER})
            with ThreadPoolExecutor(2) as pool:
                stuck = [pool.submit(post_raw, server, command(2 + n, STUCK_USER, "/help"), 60) for n in range(2)]
                wait_until(lambda: _lock_waiters(engine) == 2, timeout=15, message="both request threads to wait")

                started = time.monotonic()
                health = requests.get(f"{server.url}/health", timeout=10, headers={"Connection": "close"})
                waited = time.monotonic() - started
                assert health.status_code == 200 and health.json()["pool"]["checked_out"] >= 2
                assert waited < 3, f"/health waited {waited:.1f}s behind the busy threads"
                assert b'"status":"ok"' in _raw_get(server.url, "/livez", pause=0.3), "a slow client is served too"
                assert not any(future.done() for future in stuck), "the request threads were busy all along"
                locker.rollback()
                assert [future.result(30).status_code for future in stuck] == [200, 200]
        finally:
            locker.close()
            engine.dispose()


@pytest.mark.timeout(120)
def test_connections_that_send_nothing_hold_no_request_thread(pg_database_url, emulator):
    with running_server(pg_database_url, emulator, WEB_CONCURRENCY="1", GUNICORN_THREADS="2") as server:
        address = urlsplit(server.url)
        silent = [socket.create_connection((address.hostname, address.port), timeout=10) for _ in range(4)]
        try:
            started = time.monotonic()
            assert post_raw(server, command(10, 77, "/help"), timeout=10).status_code == 200
            # gthread's own pool would hold a thread per silent connection for up to 5 s.
            assert time.monotonic() - started < 3
        finally:
            for connection in silent:
                connection.close()
