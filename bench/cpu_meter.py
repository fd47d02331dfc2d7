"""Who spent the CPU during a measured run: the server, PostgreSQL, the whole machine."""
from __future__ import annotations

from dataclasses import dataclass

import psutil


def tree_cpu_seconds(root_pid: int | None) -> float:
    """CPU seconds of a process, its live descendants and the children it has reaped.

    Counting reaped children keeps a worker that gunicorn recycled during the
    run (max_requests) in the total.
    """
    if root_pid is None:
        return 0.0
    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
        if process is root:
            total += times.children_user + times.children_system
    return total


@dataclass(frozen=True)
class CpuFigures:
    """CPU seconds over one run. wrk's own comes with its LoadResult."""

    server: float
    db: float | None
    machine_busy: float  # all cores together, whoever used them
    machine_idle: float  # share of all cores' time left idle

    def rest(self, wrk: float) -> float:
        """What neither wrk, the server nor PostgreSQL used: this script, and anyone else's processes."""
        return max(0.0, self.machine_busy - wrk - self.server - (self.db or 0.0))


class CpuMeter:
    """CPU spent by the server, the database and the whole machine, from now to ``stop()``.

    On a 2-core machine shared by wrk, gunicorn and PostgreSQL these say who
    the bottleneck is: a load generator near 100%, a machine with idle time
    left, or CPU taken by processes outside the benchmark would make the rps
    a measure of something else.
    """

    def __init__(self, server_pid: int, db_pid: int | None):
        self._pids = (server_pid, db_pid)
        self._server = tree_cpu_seconds(server_pid)
        self._db = tree_cpu_seconds(db_pid)
        self._machine = psutil.cpu_times()

    def stop(self) -> CpuFigures:
        server_pid, db_pid = self._pids
        server = tree_cpu_seconds(server_pid) - self._server
        db = tree_cpu_seconds(db_pid) - self._db if db_pid else None
        after = psutil.cpu_times()
        spent = {name: getattr(after, name) - getattr(self._machine, name) for name in after._fields}
        total = sum(spent.values()) - spent.get("guest", 0) - spent.get("guest_nice", 0)  # guest is inside user
        idle = spent["idle"] + spent.get("iowait", 0)
        return CpuFigures(server, db, machine_busy=total - idle, machine_idle=idle / total if total > 0 else 0.0)
