"""How the keep-alive connections are spread over the gunicorn workers.

gthread workers all accept from the one listening socket, and a worker goes on
accepting while it holds fewer than ``worker_connections`` (1000) connections.
A burst of new keep-alive connections (wrk at its start, Telegram opening its
webhook connections, everyone reconnecting after a worker was recycled) often
lands entirely on one worker, which then serves every request on one core
while the other worker idles. That split decides the throughput more than
anything in the application, so the benchmark watches it, and by default
restarts a run whose connections landed lopsided (see bench.measurement.measure).
"""
from __future__ import annotations

import threading
from collections import Counter
from types import TracebackType

import psutil

from stack_harness.gunicorn_server import GunicornServer

Split = tuple[int, ...]  # established connections per worker, busiest first


def connections_by_worker(server: GunicornServer) -> dict[int, int]:
    """Worker pid -> client connections it holds open."""
    counts = {}
    for pid in server.worker_pids():
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:  # a worker that just exited (max_requests)
            continue
        counts[pid] = sum(1 for c in connections
                          if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == server.port)
    return counts


def connection_split(server: GunicornServer) -> Split:
    return tuple(sorted(connections_by_worker(server).values(), reverse=True))


def busiest_worker(server: GunicornServer) -> int:
    counts = connections_by_worker(server)
    return max(counts, key=counts.__getitem__)


def is_balanced(split: Split, workers: int, connections: int) -> bool:
    """Every worker holds at least half of its fair share of the connections."""
    return len(split) >= workers and min(split) * 2 * workers >= connections


def format_split(split: Split) -> str:
    return "/".join(str(count) for count in split) or "-"


class SplitSampler:
    """Samples ``connection_split`` in a background thread while the block runs.

    Samples with fewer than ``min_connections`` in all are left out: they are
    wrk closing up at the end, or a moment when a recycled worker's clients
    are reconnecting, and say nothing about the split.
    """

    def __init__(self, server: GunicornServer, min_connections: int, interval: float = 0.5):
        self._server = server
        self._min_connections = max(1, min_connections)
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="split-sampler", daemon=True)
        self.samples: list[Split] = []

    def _run(self) -> None:
        while not self._stopping.is_set():
            split = connection_split(self._server)
            if sum(split) >= self._min_connections:
                self.samples.append(split)
            self._stopping.wait(self._interval)

    def __enter__(self) -> SplitSampler:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopping.set()
        self._thread.join()

    def typical(self) -> str:
        """The most frequent split, e.g. ``17/15``."""
        if not self.samples:
            return "-"
        return format_split(Counter(self.samples).most_common(1)[0][0])

    def history(self) -> str:
        """Each split in the order seen, with how many samples it lasted: ``16/16 x12, 32/0 x8``."""
        runs: list[list] = []
        for split in self.samples:
            if runs and runs[-1][0] == split:
                runs[-1][1] += 1
            else:
                runs.append([split, 1])
        return ", ".join(f"{format_split(split)} x{count}" for split, count in runs)
