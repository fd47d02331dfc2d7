"""The ledger check: one processed_updates row per acknowledged update.

The reply to a ``/start`` greets the user by first name, and the benchmark's
first names end in ``#<update_id>``, so wrk (bench/webhook.lua) knows which
update each answer acknowledged; this module compares that with the database.
It serves the full server (database ``bench``) and the comparison's lean peer
(its own database, same table names, no outbox).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from bench.wrk_load import LoadResult
from stack_harness.pg_cluster import PgCluster

DATABASE = "bench"
SETTLE_TIMEOUT = 10.0


@dataclass(frozen=True)
class LedgerCheck:
    """processed_updates against what wrk saw, over every run against the full server."""

    acknowledged: int       # 2xx answers
    rows: int               # ledger rows in the database
    unanswered: int         # ids sent without a 2xx answer (in flight when wrk stopped)
    rows_unanswered: int    # of those, how many the server committed after wrk left
    users: int
    outbox: int | None      # None where the database has no outbox (the lean peer)

    @property
    def rows_acknowledged(self) -> int:
        return self.rows - self.rows_unanswered

    @property
    def ok(self) -> bool:
        return self.rows_acknowledged == self.acknowledged


def settle(pg: PgCluster, database: str = DATABASE) -> None:
    """Wait until requests still in flight when wrk stopped have committed (or given up)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    last = -1
    while time.monotonic() < deadline:
        rows = ledger_rows(pg, database)
        if rows == last:
            return
        last = rows
        time.sleep(0.5)


def ledger_rows(pg: PgCluster, database: str = DATABASE) -> int:
    return pg.execute("SELECT count(*) FROM processed_updates", dbname=database)[0][0]


def check_ledger(pg: PgCluster, runs: list[LoadResult], database: str = DATABASE) -> LedgerCheck:
    """One ledger row per acknowledged update; ids wrk left unanswered are reported apart."""
    unanswered = sorted({update_id for run in runs for update_id in run.unanswered_ids})
    rows_unanswered = pg.execute(
        "SELECT count(*) FROM processed_updates WHERE update_id = ANY(%s::bigint[])", [unanswered],
        dbname=database)[0][0]
    has_outbox = pg.execute("SELECT to_regclass('outbox') IS NOT NULL", dbname=database)[0][0]
    return LedgerCheck(
        acknowledged=sum(run.ok for run in runs),
        rows=ledger_rows(pg, database),
        unanswered=len(unanswered),
        rows_unanswered=rows_unanswered,
        users=pg.execute("SELECT count(*) FROM users", dbname=database)[0][0],
        outbox=pg.execute("SELECT count(*) FROM outbox", dbname=database)[0][0] if has_outbox else None,
    )
