"""One target's measurement: a warm-up, then a measured wrk run with its connections spread over the workers."""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.cpu_meter import CpuFigures, CpuMeter
from bench.options import Options
from bench.worker_split import Split, SplitSampler, connection_split, format_split, is_balanced
from bench.wrk_load import LoadResult, WrkRun, run_wrk
from stack_harness.gunicorn_server import GunicornServer

WARMUP_SECONDS = 2
# Every wrk run starts its update_ids here times its run number; wrk threads
# stay 10**8 apart inside a run (webhook.lua), so no id is ever sent twice.
RUN_ID_SPACING = 10**10
# A measured run whose keep-alive connections landed lopsided on the workers
# (bench/worker_split.py) is stopped after this long and started again, at
# most MAX_ATTEMPTS times in all.
SPLIT_CHECK_SECONDS = 0.5
MAX_ATTEMPTS = 12


@dataclass
class Measurement:
    """One target's measured run, and the CPU each party spent during it."""

    name: str
    load: LoadResult
    cpu: CpuFigures
    warmup: LoadResult
    rejected: list[tuple[Split, LoadResult]]  # runs cut short for a lopsided connection split
    split: SplitSampler
    notes: list[str] = field(default_factory=list)
    counted: Any = None  # what the ``meter`` given to ``measure`` counted over the kept run, if one was

    def all_runs(self) -> list[LoadResult]:
        """Every wrk run against this target: each one's answers reached the database."""
        return [self.warmup, *(load for _, load in self.rejected), self.load]


class IdRuns:
    """Hands out the first update_id of each wrk run: far apart, never reused."""

    def __init__(self) -> None:
        self._runs = 0

    def next_first_id(self) -> int:
        self._runs += 1
        return self._runs * RUN_ID_SPACING


class Meter(Protocol):
    """Started with the CPU meter of each measured run; ``stop()`` says what it counted."""

    def stop(self) -> Any: ...


def measure(name: str, server: GunicornServer, bodies: Path, ids: IdRuns, options: Options, *, track: bool,
            db_pid: int | None = None, during: Callable[[], AbstractContextManager[None]] = nullcontext,
            meter: Callable[[], Meter] | None = None) -> Measurement:
    """Warm up, then one measured wrk run whose connections are spread over the workers.

    A run whose connections landed lopsided is stopped after SPLIT_CHECK_SECONDS
    and started again (unless --any-split): see bench/worker_split.py. CPU,
    the connection split and ``meter`` (e.g. SQL statements) are counted over
    the kept run only.
    """
    common = dict(connections=options.connections, threads=options.wrk_threads, track=track)
    warmup = run_wrk(server.url, bodies, first_id=ids.next_first_id(), seconds=WARMUP_SECONDS, **common)
    rejected: list[tuple[Split, LoadResult]] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        cpu = CpuMeter(server.master_pid, db_pid)
        extra = meter() if meter else None
        with WrkRun(server.url, bodies, first_id=ids.next_first_id(), seconds=options.seconds, **common) as run:
            time.sleep(SPLIT_CHECK_SECONDS)
            split = connection_split(server)
            balanced = is_balanced(split, options.workers, options.connections)
            if not (balanced or options.any_split or attempt == MAX_ATTEMPTS):
                rejected.append((split, run.stop()))
                continue
            with during(), SplitSampler(server, min_connections=options.connections // 2) as sampler:
                load = run.wait()
                figures = cpu.stop()
                counted = extra.stop() if extra else None
            break
    measurement = Measurement(name, load, figures, warmup, rejected, sampler, counted=counted)
    if rejected:
        splits = ", ".join(format_split(split) for split, _ in rejected)
        measurement.notes.append(f"restarted the measured run {len(rejected)} time(s) after "
                                 f"{SPLIT_CHECK_SECONDS} s because its connections landed lopsided ({splits})")
    if not balanced:
        measurement.notes.append(f"measured with a lopsided connection split ({format_split(split)})")
    if len(set(sampler.samples)) > 1:
        measurement.notes.append(f"connection split during the run (0.5 s samples): {sampler.history()}")
    return measurement
