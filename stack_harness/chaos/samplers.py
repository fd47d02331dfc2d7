"""Samplers: what the server uses while the load runs (PostgreSQL connections, worker memory)."""
from __future__ import annotations

import contextlib
import threading
import time

import psutil
import psycopg

from stack_harness.chaos.constants import DATABASE, SERVER_ROLE
from stack_harness.gunicorn_server import GunicornServer
from stack_harness.pg_cluster import PgCluster


class Sampler:
    """Calls ``sample()`` every ``interval`` seconds on a daemon thread until ``stop()``.

    A sample may block while the database is frozen; the thread then simply
    resumes after the thaw, and ``stop()`` does not wait for it for long.
    """

    interval = 0.25

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5.0)

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.sample()
            except Exception:  # noqa: BLE001, S110 - the database is down, a worker just died: skip this sample
                pass

    def sample(self) -> None:
        raise NotImplementedError


class ConnectionSampler(Sampler):
    """Peak number of the server's PostgreSQL connections (by role), from pg_stat_activity."""

    def __init__(self, cluster: PgCluster) -> None:
        super().__init__()
        self._cluster = cluster
        self._connection: psycopg.Connection | None = None
        self.peak = 0
        self.peak_at = 0.0
        self.samples = 0

    def sample(self) -> None:
        try:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(self._cluster.dsn(DATABASE), connect_timeout=2, autocommit=True)
            count = self._connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND backend_type = 'client backend'",
                (SERVER_ROLE,)).fetchone()[0]
        except psycopg.Error:
            self._close()
            raise
        self.samples += 1
        if count > self.peak:
            self.peak, self.peak_at = count, time.monotonic()

    def stop(self) -> None:
        super().stop()
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


class MemorySampler(Sampler):
    """Resident memory of every worker process seen, first and last value per pid (psutil reads /proc)."""

    interval = 0.5

    def __init__(self, server: GunicornServer) -> None:
        super().__init__()
        self._server = server
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.first_seen: dict[int, float] = {}
        self.last_seen: dict[int, float] = {}

    def sample(self) -> None:
        now = time.monotonic()
        for pid in self._server.worker_pids():
            try:
                rss = psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
            self.first.setdefault(pid, rss)
            self.first_seen.setdefault(pid, now)
            self.last[pid], self.last_seen[pid] = rss, now

    def growth(self) -> dict[int, int]:
        """Bytes each worker grew between its first and its last sample."""
        return {pid: self.last[pid] - self.first[pid] for pid in self.last}

    @property
    def pids(self) -> set[int]:
        return set(self.first)
