"""Webhook throughput and latency: the real server against a bare Flask app, same gunicorn shape.

Run from the repository root::

    python -m bench.webhook_bench [--seconds 10] [--connections 32] [--workers 2] [--threads 4]

Two targets, one after the other, never at the same time:

bare  bench/bare_app.py under bench/peers/gunicorn.conf.py: POST /webhook -> 200.
      The most this machine can do with Flask + gunicorn gthread of this shape.
full  the Procfile's web process (stack_harness.gunicorn_server.GunicornServer) on a
      fresh database of a throwaway PostgreSQL (stack_harness.pg_cluster.PgCluster), with the
      Bot API emulator as Telegram. Every request is a ``/start`` from one of
      1000 users with an update_id never sent before, so each one claims a
      ledger row, upserts its user and gets its reply in the webhook response.

Each target gets a warm-up, then a measured run of closed-loop load from wrk
(bench/webhook.lua). Afterwards the full server's ledger must hold exactly one
row per 2xx answer, and no answer may be anything but 2xx; otherwise the exit
status is 1. See bench/README.md for how to read the output.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import psutil

from bench import profiling
from bench.command import run_command
from bench.measurement import WARMUP_SECONDS, IdRuns
from bench.options import Options, parse_args
from bench.report import code_version, print_report
from bench.targets import WEBHOOK_SECRET, bench_bare, bench_full
from bench.wrk_load import LoadToolError, write_bodies_file
from stack_harness.gunicorn_server import GunicornHarnessError
from stack_harness.pg_cluster import PgClusterError


def run(options: Options) -> int:
    ids = IdRuns()
    if options.profile:
        profiling.require()
    # Others' processes on the same two cores would lower every figure: say so.
    busy_before = psutil.cpu_percent(interval=1.0)
    code = code_version()  # now: others may change the tree while this runs
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as scratch:
        bodies = write_bodies_file(Path(scratch) / "bodies.lua", WEBHOOK_SECRET)
        print(f"bare: {WARMUP_SECONDS} s warm-up + {options.seconds} s ...", flush=True)
        bare = bench_bare(options, bodies, ids)
        print(f"full: {WARMUP_SECONDS} s warm-up + {options.seconds} s ...", flush=True)
        full = bench_full(options, bodies, ids)
    problems = print_report(options, [bare, full.measurement], full, busy_before, code)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv, description=__doc__.split("\n\n")[0])
    return run_command(run, options, (LoadToolError, profiling.ProfilerUnavailable, GunicornHarnessError, PgClusterError))


if __name__ == "__main__":
    sys.exit(main())
