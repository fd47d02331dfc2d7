"""What the comparison keeps of each target: one ``Point`` per concurrency, and the target's own figures.

Plain dataclasses, so the JSON file is ``dataclasses.asdict`` of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.measurement import Measurement
from bench.run_meters import RunCounts
from bench.server_probes import HealthFigures
from bench.worker_split import is_balanced


@dataclass
class Point:
    """One target at one concurrency: the measured wrk run and what it cost."""

    connections: int
    seconds: float
    requests: int
    updates: int                      # 2xx answers: acknowledged updates
    updates_per_second: float
    latency_ms: dict[str, float]      # p50, p90, p99, max (wrk: send to last byte of the answer)
    non_2xx: int
    socket_errors: dict[str, int]     # connect, read, write, timeout
    cpu_ms_per_update: float | None   # the target's processes (+ PostgreSQL where it has a database)
    cpu_percent: dict[str, float | None]  # of one core: wrk, target, postgres, emulator, bench, rest; idle: % of all
    sql_per_update: float | None      # statements other than BEGIN/COMMIT/ROLLBACK (pg_stat_statements)
    transaction_control_per_update: float | None
    top_statements_per_update: dict[str, float]
    split: str                        # most frequent connections per worker during the run
    notes: list[str]
    health: HealthFigures | None = None  # GET /health during this run (the highest concurrency only)

    @property
    def socket_error_count(self) -> int:
        return sum(self.socket_errors.values())


@dataclass
class TargetResult:
    name: str
    what: str
    settings: dict[str, str]
    points: list[Point] = field(default_factory=list)
    peak_db_connections: int | None = None
    rss_start_mib: list[float] = field(default_factory=list)  # per worker
    rss_end_mib: list[float] = field(default_factory=list)
    workers_replaced: int = 0
    check_ok: bool | None = None      # None: nothing to check (bare)
    check_lines: list[str] = field(default_factory=list)
    error: str | None = None          # it failed to start or to run
    log_tail: str | None = None       # its own log, kept when something went wrong

    def at(self, connections: int) -> Point | None:
        return next((point for point in self.points if point.connections == connections), None)


SPLIT_HISTORY_NOTE = "connection split during the run"
MIN_STATEMENT_SHARE = 0.001  # statements rarer than this per update are background work, not the request path


def point_from(m: Measurement, connections: int, workers: int, health: HealthFigures | None) -> Point:
    load, cpu, wall = m.load, m.cpu, m.load.seconds or 1.0
    counts: RunCounts = m.counted
    statements = counts.statements
    updates = load.ok

    def per_update(value: float | None) -> float | None:
        return None if value is None or not updates else value / updates

    def percent(seconds: float | None) -> float | None:
        return None if seconds is None else round(100 * seconds / wall, 1)

    rest = (cpu.machine_busy - load.load_cpu_seconds - cpu.server - (cpu.db or 0.0) - counts.emulator_cpu_seconds
            - counts.own_cpu_seconds)
    return Point(
        connections=connections,
        seconds=round(load.seconds, 3),
        requests=load.requests,
        updates=updates,
        updates_per_second=round(updates / wall, 1),
        latency_ms={"p50": load.latency_ms["50"], "p90": load.latency_ms["90"], "p99": load.latency_ms["99"],
                    "max": load.latency_max_ms},
        non_2xx=load.non_2xx,
        socket_errors={kind: count for kind, count in load.socket_errors.items() if kind != "status"},
        cpu_ms_per_update=_round(per_update(1000 * (cpu.server + (cpu.db or 0.0)))),
        cpu_percent={"wrk": percent(load.load_cpu_seconds), "target": percent(cpu.server), "postgres": percent(cpu.db),
                     "emulator": percent(counts.emulator_cpu_seconds), "bench": percent(counts.own_cpu_seconds),
                     "rest": percent(max(0.0, rest)),
                     "idle_of_all_cores": round(100 * cpu.machine_idle, 1)},
        sql_per_update=_round(per_update(statements.sql if statements else None)),
        transaction_control_per_update=_round(per_update(statements.transaction_control if statements else None)),
        top_statements_per_update={query: _round(calls / updates) for query, calls in
                                   (statements.by_text.items() if statements and updates else [])
                                   if calls / updates >= MIN_STATEMENT_SHARE},
        split=m.split.typical(),
        notes=_notes(m, workers, connections),
        health=health,
    )


def _notes(m: Measurement, workers: int, connections: int) -> list[str]:
    """measure()'s notes, less the split history when every sample was balanced (51/49 after 50/50 says nothing)."""
    lopsided = any(not is_balanced(split, workers, connections) for split in m.split.samples)
    return [note for note in m.notes if lopsided or not note.startswith(SPLIT_HISTORY_NOTE)]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
