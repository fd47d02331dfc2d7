"""What an operator would see of a server under load: /health's latency, the workers' memory."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil
import requests

from stack_harness.gunicorn_server import GunicornServer

HEALTH_INTERVAL = 0.05   # seconds between the end of one probe and the next
HEALTH_TIMEOUT = 5.0     # a probe that takes longer counts as failed
MIB = 1024 * 1024


@dataclass(frozen=True)
class HealthFigures:
    probes: int
    failed: int          # not 200, or no answer within HEALTH_TIMEOUT
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..1) of an unsorted list."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class HealthPoller:
    """GET /health in a loop while the block runs, each on a new connection, like an uptime monitor.

    A new connection each time is what a monitor or the platform's health
    check does, and it is the probe that notices a server which stopped
    accepting connections (they wait in the listen backlog). Latency counts
    from the connect to the last byte; failed probes count with their time too.
    """

    def __init__(self, url: str):
        self._url = url
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-poller", daemon=True)
        self._latencies: list[float] = []
        self._failed = 0

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                ok = requests.get(self._url, timeout=HEALTH_TIMEOUT, headers={"Connection": "close"}).status_code == 200
            except requests.RequestException:
                ok = False
            self._latencies.append(1000 * (time.monotonic() - started))
            self._failed += not ok
            self._stopping.wait(HEALTH_INTERVAL)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(HEALTH_TIMEOUT + 5)

    def figures(self) -> HealthFigures:
        values = list(self._latencies)
        return HealthFigures(len(values), self._failed, percentile(values, 0.50), percentile(values, 0.99),
                             max(values) if values else None)


def worker_rss_mib(server: GunicornServer) -> dict[int, float]:
    """Resident memory of each live worker, by pid."""
    sizes = {}
    for pid in server.worker_pids():
        try:
            sizes[pid] = psutil.Process(pid).memory_info().rss / MIB
        except psutil.NoSuchProcess:
            continue
    return sizes
