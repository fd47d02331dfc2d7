"""The webhook benchmark's report: environment, results table, ledger check, verdict.

See bench/README.md, "Reading the output", for what each figure means.
"""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench import profiling
from bench.measurement import WARMUP_SECONDS, Measurement
from bench.options import Options
from bench.targets import FIXED_SERVER_ENV, LOG_TAIL_LINES, REPO, FullRun
from bench.wrk_load import USERS, wrk_version


def code_version() -> str:
    """The commit measured, and whether the work tree differed from it (others edit it meanwhile)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10).stdout
    try:
        commit = git("rev-parse", "--short", "HEAD").strip() or "?"
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"git {commit}" + (" + uncommitted changes" if dirty else "")


def environment_lines(options: Options, code: str) -> list[str]:
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor() or "?")
    versions = ", ".join(f"{name} {metadata.version(name)}"
                         for name in ("gunicorn", "Flask", "SQLAlchemy", "psycopg2-binary", "pyTelegramBotAPI"))
    return [
        f"cores: {os.cpu_count()} ({len(os.sched_getaffinity(0))} usable), {cpu_model}",
        f"Python {platform.python_version()}; {versions}; code: {code}",
        f"gunicorn shape: gthread, {options.workers} workers x {options.threads} threads, keepalive 30 s",
        f"load: {wrk_version()}, {options.wrk_threads} thread(s), {options.connections} keep-alive connections, "
        f"closed loop, {WARMUP_SECONDS} s warm-up + {options.seconds} s measured per target",
        "full server settings changed from its defaults: "
        + " ".join(f"{name}={value}" for name, value in {**FIXED_SERVER_ENV, **options.server_env}.items()),
    ]


def _cpu(seconds: float | None, wall: float) -> str:
    return "-" if seconds is None else f"{100 * seconds / wall:.0f}%"


def _per_request_ms(m: Measurement) -> float:
    """Server plus database CPU per answered request: steadier than rps when others share the cores."""
    return 1000 * (m.cpu.server + (m.cpu.db or 0.0)) / m.load.requests if m.load.requests else 0.0


def results_table(measurements: list[Measurement]) -> list[str]:
    header = (f"{'target':<6} {'requests':>9} {'rps':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
              f"{'max ms':>7} {'non-2xx':>7} {'errors':>6} {'conns/worker':>12} {'CPU ms/req':>10}   "
              "CPU % of one core: wrk / server / postgres / rest; idle")
    lines = [header, "-" * len(header)]
    for m in measurements:
        load, wall = m.load, m.load.seconds
        lines.append(
            f"{m.name:<6} {load.requests:>9} {load.rps:>8.1f} {load.latency_ms['50']:>7.2f} "
            f"{load.latency_ms['90']:>7.2f} {load.latency_ms['99']:>7.2f} {load.latency_max_ms:>7.1f} "
            f"{load.non_2xx:>7} {load.errors:>6} {m.split.typical():>12} {_per_request_ms(m):>10.2f}   "
            f"{_cpu(load.load_cpu_seconds, wall)} / {_cpu(m.cpu.server, wall)} / {_cpu(m.cpu.db, wall)} / "
            f"{_cpu(m.cpu.rest(load.load_cpu_seconds), wall)}; {100 * m.cpu.machine_idle:.0f}%")
    return lines


def ledger_lines(full: FullRun) -> list[str]:
    ledger, runs = full.ledger, full.measurement.all_runs()
    verdict = "OK" if ledger.ok else "MISMATCH"
    per_run = " + ".join(str(run.ok) for run in runs)
    return [
        f"2xx answers to unique update_ids (warm-up + any restarted + measured: {per_run}): {ledger.acknowledged}",
        f"processed_updates rows for those ids: {ledger.rows_acknowledged}   {verdict}",
        f"ids in flight when wrk stopped (no answer seen): {ledger.unanswered}; "
        f"the server committed {ledger.rows_unanswered} of them afterwards (not counted above)",
        f"2xx answers that did not name a pending update_id: {sum(run.unmatched for run in runs)}",
        f"users rows: {ledger.users} (of {USERS} senders); outbox rows: {ledger.outbox} "
        "(0 expected: each reply rides on its webhook response)",
    ]


def failures(measurements: list[Measurement], full: FullRun) -> list[str]:
    problems = []
    for m in measurements:
        for run in m.all_runs():
            if run.non_2xx or run.errors:
                problems.append(f"{m.name}: {run.non_2xx} non-2xx answers, socket errors {run.socket_errors}")
    if not full.ledger.ok:
        problems.append(f"full: {full.ledger.rows_acknowledged} ledger rows for {full.ledger.acknowledged} "
                        "acknowledged updates")
    unmatched = sum(run.unmatched for run in full.measurement.all_runs())
    if unmatched:
        problems.append(f"full: {unmatched} 2xx answers did not carry the reply to a pending update")
    return problems


def print_report(options: Options, measurements: list[Measurement], full: FullRun, busy_before: float,
                 code: str) -> list[str]:
    by_name = {m.name: m for m in measurements}
    print("\n== environment ==")
    print("\n".join(environment_lines(options, code) + [full.postgres]))
    print(f"machine busy before the runs (other processes): {busy_before:.0f}% of all cores")
    print("\n== results (measured run; latency from wrk: send to last byte of the answer) ==")
    print("\n".join(results_table(measurements)))
    ratio = 100 * by_name["full"].load.rps / by_name["bare"].load.rps if by_name["bare"].load.rps else 0.0
    print(f"\nfull/bare: {ratio:.1f}% (full server rps as a share of the bare Flask app's)")
    for m in measurements:
        for note in m.notes:
            print(f"note ({m.name}): {note}")
    print("\n== full server: ledger check ==")
    print("\n".join(ledger_lines(full)))
    if full.profile:
        print("\n== py-spy profile of one full-server worker during the measured run ==")
        print(profiling.format_profile(full.profile))
    problems = failures(measurements, full)
    if problems:
        print(f"\n== last {LOG_TAIL_LINES} lines of the full server's log ==\n{full.log_tail}")
    print("\nRESULT: " + ("FAIL\n  " + "\n  ".join(problems) if problems else "OK"))
    return problems
