"""Our webhook server against its peers, one after the other, under the same load (issue 11's benchmark).

Run from the repository root::

    python -m bench.compare [--seconds 10] [--connections 16,40,100] [--targets bare,lean,naive,aiogram,server]

Five servers, each started alone, on the same shape (2 gunicorn workers x 8
gthread threads; aiogram: 2 aiohttp worker processes), with the Bot API
emulator answering every call after 50 ms, and the same closed-loop wrk load
at each concurrency (unique /start updates from 20,000 users):

bare     Flask that parses the JSON and answers 200: the ceiling of this stack.
lean     Flask, secret, parse, ONE statement (ledger row + user upsert), commit, reply on the answer.
naive    Flask + pyTelegramBotAPI calling send_message inline before answering.
aiogram  aiogram 3 on aiohttp, handle_in_background=False, replying through the Bot API.
server   this server, from the Procfile, on a fresh database of a throwaway PostgreSQL.

It prints the table, the ratios to issue 11's targets, CPU and SQL statements
per update, /health under load, peak PostgreSQL connections, worker RSS and
the correctness checks, and writes compare.json and compare.png under
bench/results/. Exit status 1 if a target did not run or a correctness check
failed. See bench/README.md.
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import psutil

from bench import compare_report as report
from bench.aiogram_venv import AiogramVenvError, ensure_aiogram_venv, pinned_version
from bench.command import run_command
from bench.compare_files import ensure_matplotlib, write_json, write_plot
from bench.compare_options import CompareOptions, parse_args
from bench.compare_results import TargetResult
from bench.compare_run import bench_target
from bench.compare_targets import SPECS, Shared
from bench.emulator_process import EmulatorProcess, EmulatorProcessError
from bench.measurement import WARMUP_SECONDS, IdRuns
from bench.report import code_version
from bench.run_meters import CLUSTER_SETTINGS, enable_statement_counts
from bench.targets import BOT_TOKEN, CHANNEL_ID, WEBHOOK_SECRET, postgres_description
from bench.wrk_load import LoadToolError, write_bodies_file, wrk_version
from stack_harness.pg_cluster import PgCluster, PgClusterError


def environment_lines(options: CompareOptions, code: str, postgres: str) -> list[str]:
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor() or "?")
    versions = ", ".join(f"{name} {metadata.version(name)}"
                         for name in ("gunicorn", "Flask", "SQLAlchemy", "psycopg2-binary", "pyTelegramBotAPI"))
    return [
        f"cores: {os.cpu_count()} ({len(os.sched_getaffinity(0))} usable), {cpu_model}; "
        "a shared machine: others' processes take CPU too (see rest and idle)",
        f"Python {platform.python_version()}; {versions}; aiogram {pinned_version()} (own venv); code: {code}",
        f"shape: {options.workers} workers x {options.threads} threads of gunicorn gthread "
        f"(aiogram: {options.workers} aiohttp worker processes), keepalive 30 s",
        f"load: {wrk_version()}, {options.wrk_threads} threads, closed loop over keep-alive connections "
        f"({', '.join(map(str, options.connections))}), {WARMUP_SECONDS} s warm-up + {options.seconds} s measured "
        f"per point, unique /start updates from {options.users} users",
        f"Telegram: the Bot API emulator in its own process, answering every call after "
        f"{1000 * options.latency:.0f} ms",
        postgres,
    ]


def _start_cluster() -> tuple[PgCluster, bool]:
    """A throwaway cluster with pg_stat_statements preloaded, or without it where the library is missing."""
    try:
        pg = PgCluster(settings=CLUSTER_SETTINGS).start()
    except PgClusterError:
        return PgCluster().start(), False
    enable_statement_counts(pg)
    return pg, True


def run(options: CompareOptions) -> int:
    ensure_matplotlib()  # fail before the long part, not after it
    aiogram_gunicorn = ensure_aiogram_venv() if "aiogram" in options.targets else None
    busy_before, load_before = psutil.cpu_percent(interval=1.0), os.getloadavg()
    code = code_version()
    results: list[TargetResult] = []
    ids = IdRuns()
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as scratch:
        bodies = write_bodies_file(Path(scratch) / "bodies.lua", WEBHOOK_SECRET, users=options.users)
        pg, counts_statements = _start_cluster()
        try:
            with EmulatorProcess(BOT_TOKEN, CHANNEL_ID) as emulator:
                emulator.set_latency(options.latency)
                shared = Shared(pg, emulator, aiogram_gunicorn, counts_statements)
                for name in options.targets:
                    print(f"{name}: starting ...", flush=True)
                    results.append(bench_target(SPECS[name], shared, options, bodies, ids))
            postgres = postgres_description(pg) + (
                "; SQL statements from pg_stat_statements" if counts_statements
                else "; pg_stat_statements unavailable: no statement counts")
        finally:
            pg.close()
    load_after = os.getloadavg()
    environment = environment_lines(options, code, postgres) + [
        f"machine before the runs: {busy_before:.0f}% of all cores busy, load average {load_before[0]:.2f}; "
        f"after: load average {load_after[0]:.2f}"]
    return _report(options, environment, results)


def _report(options: CompareOptions, environment: list[str], results: list[TargetResult]) -> int:
    by_name = {result.name: result for result in results}
    top = max(options.connections)
    found = report.ratios(by_name, options.connections)
    sections = [
        ("environment", environment),
        ("updates/s and latency per target and concurrency (measured runs)", report.results_table(results)),
        ("per target", report.target_lines(results, top)),
        ("ratios (issue 11)", report.ratio_lines(found, options.connections, by_name.get("server"))),
        (f"the server's SQL statements per update at {top} connections (pg_stat_statements)",
         report.statement_lines(by_name["server"].at(top) if "server" in by_name else None)),
        ("correctness", report.check_lines(results)),
        ("notes", report.note_lines(results)),
    ]
    for title, lines in sections:
        if lines:
            print(f"\n== {title} ==")
            print("\n".join(lines))
    for result in results:
        if result.log_tail:
            print(f"\n== last lines of {result.name}'s log ==\n{result.log_tail}")
    options.results_dir.mkdir(parents=True, exist_ok=True)
    write_json(options.results_dir / "compare.json", environment, options, results, found)
    write_plot(options.results_dir / "compare.png", results,
               f"webhook /start, {options.workers}x{options.threads} gthread, Bot API at "
               f"{1000 * options.latency:.0f} ms, 2-core shared machine")
    print(f"\nwrote {options.results_dir / 'compare.json'} and {options.results_dir / 'compare.png'}")
    failed = report.problems(results)
    print("\nRESULT: " + ("FAIL\n  " + "\n  ".join(failed) if failed else "OK"))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv, description=__doc__.split("\n\n")[0])
    return run_command(run, options, (LoadToolError, PgClusterError, EmulatorProcessError, AiogramVenvError))


if __name__ == "__main__":
    sys.exit(main())
