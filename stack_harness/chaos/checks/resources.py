"""Resource invariants: no connection idle in transaction, pools idle, worker RSS bounded, connection budget."""
from __future__ import annotations

import time

from stack_harness.chaos.constants import DATABASE, SERVER_ROLE
from stack_harness.chaos.db_setup import connection_budget
from stack_harness.chaos.harness import ChaosRun


def check_sessions(run: ChaosRun) -> None:
    """No connection idle in transaction, and every worker's pool back to 0 checked out when idle."""
    deadline = time.monotonic() + 5.0
    while True:
        stuck = [backend for backend in run.cluster.idle_in_transaction(DATABASE) if backend.usename == SERVER_ROLE]
        if not stuck:
            break
        if time.monotonic() >= deadline:
            for backend in stuck:
                run.violate(f"connection of {backend.application_name} idle in transaction for {backend.state_age}")
            break
        run.stop.wait(0.1)  # poll interval
    check_pools_idle(run)


def check_pools_idle(run: ChaosRun, within: float = 10.0) -> None:
    """GET /health until each live worker has reported ``pool.checked_out == 0`` at least once."""
    deadline = time.monotonic() + within
    idle, last = set(), {}
    while True:
        workers = set(run.server.worker_pids())
        if workers and workers <= idle:
            return
        if time.monotonic() >= deadline:
            for pid in sorted(workers - idle):
                run.violate(f"worker {pid} still has {last.get(pid, '?')} connection(s) checked out when idle")
            return
        _, body = run.health()
        run.stop.wait(0.02)  # poll interval
        pid, checked_out = body.get("worker_pid"), (body.get("pool") or {}).get("checked_out")
        if pid is not None:
            last[pid] = checked_out
            if checked_out == 0:
                idle.add(pid)


def check_memory(run: ChaosRun) -> None:
    growth = run.memory.growth()
    if not growth:
        return
    limit = run.load.rss_growth_limit_mib * 2**20
    for pid, grew in sorted(growth.items()):
        if grew > limit:
            seconds = run.memory.last_seen[pid] - run.memory.first_seen[pid]
            run.violate(f"worker {pid} grew {grew / 2**20:.1f} MiB in {seconds:.0f}s (limit "
                        f"{run.load.rss_growth_limit_mib:.0f} MiB)")
    worst = max(growth.values()) / 2**20
    peak = max(run.memory.last.values()) / 2**20
    run.note(f"RSS growth max {worst:+.1f} MiB (peak {peak:.0f} MiB, {len(growth)} workers)")


def check_connections(run: ChaosRun) -> None:
    """Report the server's peak connection count against its budget (scenario 7 enforces it)."""
    budget = connection_budget(run.env)
    over = " (OVER BUDGET)" if run.connections.peak > budget else ""
    run.note(f"peak connections {run.connections.peak}/{budget}{over}")
