#!/usr/bin/env python3
"""Soak the server: run the chaos scenarios in rotation for N minutes, then print a table.

    python scripts/chaos.py --minutes 10                      # every scenario in turn
    python scripts/chaos.py --minutes 3 --scenario db-freeze  # one scenario, again and again
    python scripts/chaos.py --minutes 10 --keep-logs /tmp/chaos-logs

Each slice is one run of a scenario from ``stack_harness/chaos/``: a fresh
throwaway PostgreSQL cluster, real gunicorn (2 workers) from the Procfile,
the Bot API emulator, a mixed load for the slice's length with the
scenario's faults injected throughout, then the invariants. The table lists
every slice (scenario, updates, faults injected, lost, doubled, result,
notes) and the totals per scenario; violations and the server's error lines
follow. The exit status is 1 if any invariant broke.

Needs what the test suite needs (``pip install -r requirements-test.txt``)
and runs from any directory: it puts the repository root on ``sys.path``.
All traffic stays on 127.0.0.1 and everything it starts is stopped when it
ends (Ctrl-C included).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stack_harness.chaos import SCENARIOS, Load, ScenarioResult, format_table, run_scenario
from stack_harness.pg_cluster import PgCluster

# What a run costs besides its load: cluster and server start, settling, checks, stop.
OVERHEAD_SECONDS = 14.0
MIN_LOAD_SECONDS = 4.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True, help="total time to soak for")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run only this scenario (repeat for several); default: all, in rotation")
    parser.add_argument("--slice", type=float, default=None,
                        help="seconds per scenario run (default: the time shared out evenly, at least 25)")
    parser.add_argument("--rate", type=float, default=15.0, help="feeder updates per second (default 15)")
    parser.add_argument("--payers-per-minute", type=float, default=20.0, help="purchases per minute (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    parser.add_argument("--keep-logs", type=Path, default=None, help="directory for every run's server and DB logs")
    return parser.parse_args(argv)


def slice_seconds(args: argparse.Namespace, names: list[str]) -> float:
    if args.slice:
        return args.slice
    return max(25.0, args.minutes * 60.0 / len(names))


def load_for(args: argparse.Namespace, seconds: float) -> Load:
    """The load of one slice: its length minus the run's overhead."""
    load_seconds = max(MIN_LOAD_SECONDS, seconds - OVERHEAD_SECONDS)
    return Load(seconds=load_seconds, rate=args.rate, users=max(30, int(args.rate * 4)),
                payers=max(1, round(args.payers_per_minute * load_seconds / 60.0)), duplicate_probability=0.05,
                connections=8, rss_growth_limit_mib=64.0)


def run_one(name: str, load: Load, seed: int, keep_logs: Path | None, number: int) -> ScenarioResult:
    """One slice on a fresh cluster; a harness failure becomes a failed row, not the end of the soak."""
    started = time.monotonic()
    keep = None
    if keep_logs is not None:
        keep_logs.mkdir(parents=True, exist_ok=True)

        def keep(kind: str, text: str) -> None:
            (keep_logs / f"{number:03d}-{name}-{kind}.log").write_text(text)
    try:
        with PgCluster() as cluster:
            cluster.create_database("bot")
            return run_scenario(name, cluster, load, seed=seed, keep_log=keep)
    except Exception as error:  # noqa: BLE001 - a failed slice is a row of the table, the soak goes on
        return ScenarioResult.crashed(name, error, time.monotonic() - started)


def totals(results: list[ScenarioResult]) -> list[list[str]]:
    """One row per scenario: sums over its slices."""
    by_name: dict[str, list[ScenarioResult]] = defaultdict(list)
    for result in results:
        by_name[result.scenario].append(result)
    rows = []
    for name, runs in by_name.items():
        failed = sum(1 for run in runs if not run.ok)
        rows.append([name, str(sum(r.updates for r in runs)), str(sum(r.faults for r in runs)),
                     str(sum(r.lost for r in runs)), str(sum(r.doubled for r in runs)),
                     "ok" if not failed else f"FAIL({failed}/{len(runs)})",
                     f"{len(runs)} run(s), {sum(r.seconds for r in runs):.0f}s"])
    return rows


def print_failures(results: list[ScenarioResult]) -> None:
    for number, result in enumerate(results, 1):
        if result.ok:
            continue
        print(f"\n#{number} {result.scenario}: {len(result.violations)} violation(s)")
        for violation in result.violations:
            print(f"  - {violation}")
        for line in result.evidence:
            print(f"    | {line}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.scenario or list(SCENARIOS)
    seed = args.seed if args.seed is not None else int(time.time())
    each = slice_seconds(args, names)
    deadline = time.monotonic() + args.minutes * 60.0
    print(f"chaos soak: {args.minutes:g} min, {len(names)} scenario(s), {each:.0f}s slices, seed {seed}", flush=True)
    results: list[ScenarioResult] = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            name = names[len(results) % len(names)]
            if remaining < MIN_LOAD_SECONDS + OVERHEAD_SECONDS and results:
                break
            result = run_one(name, load_for(args, min(each, max(remaining, each / 2))), seed + len(results),
                             args.keep_logs, len(results) + 1)
            results.append(result)
            print(f"[{len(results):3d}] {result.scenario:<18} {result.seconds:5.0f}s  "
                  f"{'ok' if result.ok else 'FAIL'}  updates {result.updates}, faults {result.faults}, "
                  f"lost {result.lost}, doubled {result.doubled}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: reporting the runs so far", flush=True)
    print("\n" + format_table([result.row() for result in results]))
    print("\n" + format_table(totals(results)))
    print_failures(results)
    return 0 if results and all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
