"""What PostgreSQL and Telegram (the emulator) did during a measured run, and peak connections.

SQL statements come from ``pg_stat_statements``, loaded into the throwaway
cluster with ``shared_preload_libraries``: its counters are updated as each
statement ends, so a snapshot before and after a run is exact, unlike
``pg_stat_database.xact_commit``, which backends flush up to seconds late.
It counts every statement a client sends, transaction control (BEGIN,
COMMIT, ROLLBACK, as psycopg2 sends them) included; the two are reported
apart. Statements are counted per database, so the benchmark's own queries
(made from the ``postgres`` database) are not in them.
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field

import psutil
import psycopg

from bench.cpu_meter import tree_cpu_seconds
from stack_harness.pg_cluster import PgCluster

EXTENSION = "pg_stat_statements"
CLUSTER_SETTINGS = {"shared_preload_libraries": EXTENSION, "pg_stat_statements.track_utility": "on"}
_TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION|END)\b", re.I)
_STATEMENTS_SQL = """
SELECT s.query, sum(s.calls)::bigint FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = %s GROUP BY s.query
"""
PEAK_SAMPLE_SECONDS = 0.25
TOP_STATEMENTS = 8


def enable_statement_counts(pg: PgCluster) -> None:
    """The view exists once the extension is created (the library was preloaded at start)."""
    pg.execute(f"CREATE EXTENSION IF NOT EXISTS {EXTENSION}")


def statement_calls(pg: PgCluster, database: str) -> Counter[str]:
    """Calls so far per normalised statement text, in one database."""
    return Counter({query: calls for query, calls in pg.execute(_STATEMENTS_SQL, [database])})


@dataclass(frozen=True)
class Statements:
    """Statements one database ran during a run."""

    sql: int                   # everything but transaction control
    transaction_control: int   # BEGIN, COMMIT, ROLLBACK
    by_text: dict[str, int]    # the most frequent statements, normalised, with their calls

    @classmethod
    def between(cls, before: Counter[str], after: Counter[str]) -> Statements:
        spent = after - before
        control = sum(calls for query, calls in spent.items() if _TRANSACTION_CONTROL.match(query))
        top = {_one_line(query): calls for query, calls in spent.most_common(TOP_STATEMENTS)}
        return cls(sum(spent.values()) - control, control, top)


@dataclass(frozen=True)
class RunCounts:
    statements: Statements | None  # None for a target without a database
    emulator_cpu_seconds: float
    own_cpu_seconds: float  # this process: the samplers and the /health poller (wrk is counted apart)


class RunMeter:
    """Started with each measured run's CPU meter (``bench.measurement.measure``'s ``meter``)."""

    def __init__(self, pg: PgCluster, database: str | None, emulator_pid: int):
        self._pg, self._database, self._emulator_pid = pg, database, emulator_pid
        self._statements = statement_calls(pg, database) if database else None
        self._emulator = tree_cpu_seconds(emulator_pid)
        self._own = _own_cpu_seconds()

    def stop(self) -> RunCounts:
        statements = None
        if self._database:
            statements = Statements.between(self._statements, statement_calls(self._pg, self._database))
        return RunCounts(statements, tree_cpu_seconds(self._emulator_pid) - self._emulator,
                         _own_cpu_seconds() - self._own)


def _own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


@dataclass
class PeakConnections:
    """The most client connections to one database at once, sampled from pg_stat_activity.

    One connection of its own (to ``postgres``, so it is not counted), a
    sample every PEAK_SAMPLE_SECONDS until the block ends.
    """

    pg: PgCluster
    database: str
    peak: int = 0
    samples: int = 0
    error: str | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        sql = ("SELECT count(*) FROM pg_stat_activity "
               "WHERE datname = %s AND backend_type = 'client backend'")
        try:
            with psycopg.connect(self.pg.dsn(), connect_timeout=5, autocommit=True) as connection:
                while not self._stopping.is_set():
                    count = connection.execute(sql, [self.database]).fetchone()[0]
                    self.peak, self.samples = max(self.peak, count), self.samples + 1
                    self._stopping.wait(PEAK_SAMPLE_SECONDS)
        except psycopg.Error as error:
            self.error = str(error).strip().splitlines()[0]

    def __enter__(self) -> PeakConnections:
        self._thread = threading.Thread(target=self._run, name="peak-connections", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)


def _one_line(query: str, limit: int = 110) -> str:
    text = " ".join(query.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
