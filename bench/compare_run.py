"""One target's part of the comparison: start it, measure it at each concurrency, check it, stop it."""
from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import psutil

from bench.compare_options import CompareOptions
from bench.compare_report import DISTURBED_PERCENT
from bench.compare_results import Point, TargetResult, point_from
from bench.compare_targets import Shared, Spec, start_target
from bench.ledger import LedgerCheck, check_ledger, settle
from bench.measurement import IdRuns, Measurement, measure
from bench.reply_check import check_replies
from bench.run_meters import PeakConnections, RunMeter
from bench.server_probes import HealthPoller, worker_rss_mib
from bench.wrk_load import LoadResult
from stack_harness.gunicorn_server import GunicornHarnessError, GunicornServer

LOG_TAIL_LINES = 40
QUIET_PERCENT = 15.0  # of all cores, busy between runs: about a third of one core


def bench_target(spec: Spec, shared: Shared, options: CompareOptions, bodies: Path, ids: IdRuns) -> TargetResult:
    """Every point of one target; a target that fails to start or run is reported, not fatal."""
    result = TargetResult(spec.name, spec.what, settings={})
    try:
        with start_target(spec, shared, options) as started:
            result.settings = started.settings
            _measure_all(started.server, spec, shared, options, bodies, ids, result)
    except GunicornHarnessError as error:
        result.error = str(error).splitlines()[0]
        result.log_tail = str(error)
    return result


def _measure_all(server: GunicornServer, spec: Spec, shared: Shared, options: CompareOptions, bodies: Path,
                 ids: IdRuns, result: TargetResult) -> None:
    shared.emulator.new_calls()  # the replies counted are this target's only
    result.rss_start_mib = _rss(server)
    runs: list[LoadResult] = []
    peak = PeakConnections(shared.pg, spec.database) if spec.database else None
    with peak or nullcontext():
        for connections in options.connections:
            result.points.append(_least_disturbed_point(server, spec, shared, options, connections, bodies, ids, runs))
    result.rss_end_mib = _rss(server)
    result.peak_db_connections = peak.peak if peak else None
    if peak and peak.error:
        result.check_lines.append(f"peak connections sampler stopped: {peak.error}")
    result.workers_replaced = max(0, server.log_text().count("Booting worker") - options.workers)
    _check(spec, shared, runs, result)
    troubled = result.check_ok is False or any(p.non_2xx or p.socket_error_count for p in result.points)
    if troubled or result.workers_replaced:
        result.log_tail = server.log_tail(LOG_TAIL_LINES)


def _least_disturbed_point(server: GunicornServer, spec: Spec, shared: Shared, options: CompareOptions,
                           connections: int, bodies: Path, ids: IdRuns, runs: list[LoadResult]) -> Point:
    """Measure; while other processes took a share of the cores (DISTURBED_PERCENT), measure again.

    The machine is shared: a run during someone else's test suite measures
    them as much as the target. At most ``options.disturbed_retries`` more
    runs; the least disturbed one is kept. Every run's answers go to ``runs``
    (they all reached the target's database or Telegram).
    """
    kept: Point | None = None
    others_seen = []
    for attempt in range(1 + options.disturbed_retries):
        if attempt:
            _wait_for_quiet(options.quiet_wait)
        print(f"  {spec.name}: {connections} connections, warm-up + {options.seconds} s ...", flush=True)
        health = HealthPoller(server.url + "/health") if connections == max(options.connections) else None
        measurement = _measure_point(server, spec, shared, options, connections, bodies, ids, health)
        runs.extend(measurement.all_runs())
        point = point_from(measurement, connections, options.workers, health.figures() if health else None)
        others = point.cpu_percent["rest"] or 0.0
        others_seen.append(f"{others:.0f}%")
        if kept is None or others < (kept.cpu_percent["rest"] or 0.0):
            kept = point
        if others < DISTURBED_PERCENT:
            break
    assert kept is not None
    if len(others_seen) > 1:
        kept.notes.append(f"measured {len(others_seen)} times: other processes took {', '.join(others_seen)} of a "
                          "core; kept the least disturbed run")
    return kept


def _wait_for_quiet(seconds: float) -> None:
    """Before measuring again, give other people's work up to ``seconds`` to calm down.

    Between runs the target is idle, so what keeps the cores busy is others'.
    """
    deadline = time.monotonic() + seconds
    said = False
    while time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=1.0)
        if busy < QUIET_PERCENT:
            return
        if not said:
            print(f"  (the machine is {busy:.0f}% busy with other work: waiting up to {seconds:.0f} s)", flush=True)
            said = True


def _measure_point(server: GunicornServer, spec: Spec, shared: Shared, options: CompareOptions, connections: int,
                   bodies: Path, ids: IdRuns, health: HealthPoller | None) -> Measurement:
    return measure(
        spec.name, server, bodies, ids, options.point(connections), track=spec.track,
        db_pid=shared.pg.postmaster_pid if spec.database else None,
        during=(lambda: health) if health else nullcontext,
        meter=lambda: RunMeter(shared.pg, spec.database if shared.counts_statements else None, shared.emulator.pid),
    )


def _rss(server: GunicornServer) -> list[float]:
    return [round(size, 1) for _, size in sorted(worker_rss_mib(server).items())]


def _check(spec: Spec, shared: Shared, runs: list[LoadResult], result: TargetResult) -> None:
    """Every acknowledged update handled exactly once, as far as the target lets us see."""
    if spec.check == "ledger":
        settle(shared.pg, spec.database)
        ledger = check_ledger(shared.pg, runs, spec.database)
        unmatched = sum(run.unmatched for run in runs)
        result.check_ok = ledger.ok and unmatched == 0
        result.check_lines += _ledger_lines(ledger, unmatched)
    elif spec.check == "replies":
        replies = check_replies(shared.emulator, runs)
        result.check_ok = replies.ok
        result.check_lines += replies.lines()
    else:
        result.check_lines.append("nothing to check: it keeps nothing and sends nothing")


def _ledger_lines(ledger: LedgerCheck, unmatched: int) -> list[str]:
    verdict = "OK" if ledger.ok else "MISMATCH"
    lines = [
        f"2xx answers to unique update_ids (every run against it): {ledger.acknowledged}; "
        f"processed_updates rows for them: {ledger.rows_acknowledged}   {verdict}",
        f"in flight when wrk stopped (no answer seen): {ledger.unanswered}, of which committed: "
        f"{ledger.rows_unanswered} (not counted above)",
        f"2xx answers without the reply to a pending update: {unmatched}"
        + ("" if not unmatched else "   MISMATCH"),
        f"users rows: {ledger.users}"
        + ("" if ledger.outbox is None else f"; outbox rows: {ledger.outbox} (0 expected: replies ride on answers)"),
    ]
    return lines
