"""Webhook throughput and latency: the real server against a bare Flask app, same gunicorn shape.

Run from the repository root::

    python -m bench.webhook_bench [--seconds 10] [--connections 32] [--workers 2] [--threads 4]

Two targets, one after the other, never at the same time:

bare  bench/bare_app.py under bench/bare_gunicorn.conf.py: POST /webhook -> 200.
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

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import psutil

from bench import profiling
from bench.worker_split import Split, SplitSampler, busiest_worker, connection_split, format_split, is_balanced
from bench.wrk_load import USERS, LoadResult, LoadToolError, WrkRun, run_wrk, write_bodies_file, wrk_version
from settings import BACKGROUND_CONNECTIONS, HEALTH_PROBE_CONNECTIONS
from botapi_emulator import BotApiEmulator
from stack_harness.gunicorn_server import GunicornHarnessError, GunicornServer
from stack_harness.pg_cluster import PgCluster, PgClusterError

REPO = Path(__file__).resolve().parents[1]
BARE_PROCFILE = "bench/bare.procfile"
BOT_TOKEN = "123456:BENCH-token_for-the-benchmark"
WEBHOOK_SECRET = "bench-secret_0123456789"
CHANNEL_ID = -1001000000001
DATABASE = "bench"
WARMUP_SECONDS = 2
# Every wrk run starts its update_ids here times its run number; wrk threads
# stay 10**8 apart inside a run (webhook.lua), so no id is ever sent twice.
RUN_ID_SPACING = 10**10
SETTLE_TIMEOUT = 10.0
LOG_TAIL_LINES = 40
# A measured run whose keep-alive connections landed lopsided on the workers
# (bench/worker_split.py) is stopped after this long and started again, at
# most MAX_ATTEMPTS times in all.
SPLIT_CHECK_SECONDS = 0.5
MAX_ATTEMPTS = 12
# Server settings the benchmark changes (see full_env); --server-env may override them.
FIXED_SERVER_ENV = {"FLOOD_LIMIT_PER_MINUTE": "0"}


@dataclass(frozen=True)
class Options:
    seconds: int
    connections: int
    workers: int
    threads: int
    wrk_threads: int
    server_env: dict[str, str]
    profile: bool
    any_split: bool


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

    def all_runs(self) -> list[LoadResult]:
        """Every wrk run against this target: each one's answers reached the database."""
        return [self.warmup, *(load for _, load in self.rejected), self.load]


@dataclass(frozen=True)
class LedgerCheck:
    """processed_updates against what wrk saw, over every run against the full server."""

    acknowledged: int       # 2xx answers
    rows: int               # ledger rows in the database
    unanswered: int         # ids sent without a 2xx answer (in flight when wrk stopped)
    rows_unanswered: int    # of those, how many the server committed after wrk left
    users: int
    outbox: int

    @property
    def rows_acknowledged(self) -> int:
        return self.rows - self.rows_unanswered

    @property
    def ok(self) -> bool:
        return self.rows_acknowledged == self.acknowledged


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into an exception so every ``with`` block cleans up."""


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per target (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, WEB_CONCURRENCY (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker, GUNICORN_THREADS (default 4)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: it needs little CPU)")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the full server, e.g. MAX_REQUESTS=0 (repeatable)")
    parser.add_argument("--profile", action="store_true",
                        help="sample one full-server worker with py-spy during the measured run")
    parser.add_argument("--any-split", action="store_true",
                        help="measure however the connections land on the workers (default: restart a run "
                             "whose connections landed lopsided, see bench/worker_split.py)")
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.connections < args.wrk_threads or args.wrk_threads < 1:
        parser.error("need --seconds >= 1 and --connections >= --wrk-threads >= 1")
    server_env = {}
    for item in args.server_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--server-env wants NAME=VALUE, got {item!r}")
        server_env[name] = value
    return Options(args.seconds, args.connections, args.workers, args.threads, args.wrk_threads,
                   server_env, args.profile, args.any_split)


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------


class IdRuns:
    """Hands out the first update_id of each wrk run: far apart, never reused."""

    def __init__(self) -> None:
        self._runs = 0

    def next_first_id(self) -> int:
        self._runs += 1
        return self._runs * RUN_ID_SPACING


def tree_cpu_seconds(root_pid: int | None) -> float:
    """CPU seconds of a process, its live descendants and the children it has reaped.

    Counting reaped children keeps a worker that gunicorn recycled during the
    run (max_requests) in the total.
    """
    if root_pid is None:
        return 0.0
    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
        if process is root:
            total += times.children_user + times.children_system
    return total


@dataclass(frozen=True)
class CpuFigures:
    """CPU seconds over one run. wrk's own comes with its LoadResult."""

    server: float
    db: float | None
    machine_busy: float  # all cores together, whoever used them
    machine_idle: float  # share of all cores' time left idle

    def rest(self, wrk: float) -> float:
        """What neither wrk, the server nor PostgreSQL used: this script, and anyone else's processes."""
        return max(0.0, self.machine_busy - wrk - self.server - (self.db or 0.0))


class CpuMeter:
    """CPU spent by the server, the database and the whole machine, from now to ``stop()``.

    On a 2-core machine shared by wrk, gunicorn and PostgreSQL these say who
    the bottleneck is: a load generator near 100%, a machine with idle time
    left, or CPU taken by processes outside the benchmark would make the rps
    a measure of something else.
    """

    def __init__(self, server_pid: int, db_pid: int | None):
        self._pids = (server_pid, db_pid)
        self._server = tree_cpu_seconds(server_pid)
        self._db = tree_cpu_seconds(db_pid)
        self._machine = psutil.cpu_times()

    def stop(self) -> CpuFigures:
        server_pid, db_pid = self._pids
        server = tree_cpu_seconds(server_pid) - self._server
        db = tree_cpu_seconds(db_pid) - self._db if db_pid else None
        after = psutil.cpu_times()
        spent = {name: getattr(after, name) - getattr(self._machine, name) for name in after._fields}
        total = sum(spent.values()) - spent.get("guest", 0) - spent.get("guest_nice", 0)  # guest is inside user
        idle = spent["idle"] + spent.get("iowait", 0)
        return CpuFigures(server, db, machine_busy=total - idle, machine_idle=idle / total if total > 0 else 0.0)


def measure(name: str, server: GunicornServer, bodies: Path, ids: IdRuns, options: Options, *, track: bool,
            db_pid: int | None = None, during: Callable[[], AbstractContextManager[None]] = nullcontext) -> Measurement:
    """Warm up, then one measured wrk run whose connections are spread over the workers.

    A run whose connections landed lopsided is stopped after SPLIT_CHECK_SECONDS
    and started again (unless --any-split): see bench/worker_split.py. CPU
    and the connection split are counted over the kept run only.
    """
    common = dict(connections=options.connections, threads=options.wrk_threads, track=track)
    warmup = run_wrk(server.url, bodies, first_id=ids.next_first_id(), seconds=WARMUP_SECONDS, **common)
    rejected: list[tuple[Split, LoadResult]] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        cpu = CpuMeter(server.master_pid, db_pid)
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
            break
    measurement = Measurement(name, load, figures, warmup, rejected, sampler)
    if rejected:
        splits = ", ".join(format_split(split) for split, _ in rejected)
        measurement.notes.append(f"restarted the measured run {len(rejected)} time(s) after "
                                 f"{SPLIT_CHECK_SECONDS} s because its connections landed lopsided ({splits})")
    if not balanced:
        measurement.notes.append(f"measured with a lopsided connection split ({format_split(split)})")
    if len(set(sampler.samples)) > 1:
        measurement.notes.append(f"connection split during the run (0.5 s samples): {sampler.history()}")
    return measurement


# --------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------


def shape_env(options: Options) -> dict[str, str]:
    """Workers and threads, read by both gunicorn configs from the same variables."""
    return {"WEB_CONCURRENCY": str(options.workers), "GUNICORN_THREADS": str(options.threads)}


def bench_bare(options: Options, bodies: Path, ids: IdRuns) -> Measurement:
    with GunicornServer(REPO, shape_env(options), procfile=BARE_PROCFILE, process_type="bare") as server:
        server.wait_for_workers(options.workers)
        return measure("bare", server, bodies, ids, options, track=False)


def full_env(database_url: str, api_url: str, options: Options) -> dict[str, str]:
    """The real server's settings: defaults except what the benchmark must set.

    The connection budget is raised only if --workers/--threads need more
    than the default DB_MAX_CONNECTIONS allows (the server refuses to start
    otherwise). The per-user flood limit is off: 1000 users sharing hundreds
    of updates per second would each pass 30 a minute within a minute, and
    the server would then answer without its /start reply, which is not the
    path measured here (the flood counter's SQL still runs on every update).
    """
    per_worker = options.threads + BACKGROUND_CONNECTIONS + HEALTH_PROBE_CONNECTIONS
    return {
        "BOT_TOKEN": BOT_TOKEN,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELEGRAM_API_URL": api_url,
        "DATABASE_URL": database_url,
        "CHANNEL_ID": str(CHANNEL_ID),
        "DB_MAX_CONNECTIONS": str(max(20, options.workers * per_worker)),
        **FIXED_SERVER_ENV,
        **shape_env(options),
        **options.server_env,
    }


@dataclass
class FullRun:
    """The full target's measurement and what was checked and learned around it."""

    measurement: Measurement
    ledger: LedgerCheck
    postgres: str
    profile: profiling.Profile | None
    log_tail: str  # the server's own log, shown when a check fails


def bench_full(options: Options, bodies: Path, ids: IdRuns) -> FullRun:
    with ExitStack() as stack:
        pg = stack.enter_context(PgCluster())
        pg.create_database(DATABASE)
        emulator = stack.enter_context(BotApiEmulator(token=BOT_TOKEN, channel_id=CHANNEL_ID))
        server = stack.enter_context(GunicornServer(REPO, full_env(pg.url(DATABASE), emulator.url, options)))
        server.wait_for_workers(options.workers)
        boots_before = server.log_text().count("Booting worker")
        recordings: list[profiling.Recording] = []
        measurement = measure("full", server, bodies, ids, options, track=True, db_pid=pg.postmaster_pid,
                              during=_profiler(server, options, recordings))
        restarts = server.log_text().count("Booting worker") - boots_before
        if restarts:
            measurement.notes.append(f"gunicorn started {restarts} replacement worker(s) during the runs "
                                     "(max_requests recycling; MAX_REQUESTS=0 turns it off)")
        settle(pg)
        ledger = check_ledger(pg, measurement.all_runs())
        profile = None
        for recording in recordings:
            if recording.error:
                measurement.notes.append(f"no profile: {recording.error}")
            else:
                profile = profiling.summarize(recording, REPO)
        return FullRun(measurement, ledger, postgres_description(pg), profile, server.log_tail(LOG_TAIL_LINES))


def _profiler(server: GunicornServer, options: Options,
              found: list[profiling.Recording]) -> Callable[[], AbstractContextManager[None]]:
    """A context factory for ``measure``: samples the busiest worker if --profile was given.

    A worker recycled by max_requests during the run ends its profile early;
    ``--server-env MAX_REQUESTS=0`` avoids that.
    """
    if not options.profile:
        return nullcontext

    @contextmanager
    def sample() -> Iterator[None]:
        worker = busiest_worker(server)
        with profiling.sampling(worker, options.seconds - SPLIT_CHECK_SECONDS) as recording:
            yield
        found.append(recording)

    return sample


def settle(pg: PgCluster) -> None:
    """Wait until requests still in flight when wrk stopped have committed (or given up)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    last = -1
    while time.monotonic() < deadline:
        rows = ledger_rows(pg)
        if rows == last:
            return
        last = rows
        time.sleep(0.5)


def ledger_rows(pg: PgCluster) -> int:
    return pg.execute("SELECT count(*) FROM processed_updates", dbname=DATABASE)[0][0]


def check_ledger(pg: PgCluster, runs: list[LoadResult]) -> LedgerCheck:
    """One ledger row per acknowledged update; ids wrk left unanswered are reported apart."""
    unanswered = sorted({update_id for run in runs for update_id in run.unanswered_ids})
    rows_unanswered = pg.execute(
        "SELECT count(*) FROM processed_updates WHERE update_id = ANY(%s::bigint[])", [unanswered],
        dbname=DATABASE)[0][0]
    return LedgerCheck(
        acknowledged=sum(run.ok for run in runs),
        rows=ledger_rows(pg),
        unanswered=len(unanswered),
        rows_unanswered=rows_unanswered,
        users=pg.execute("SELECT count(*) FROM users", dbname=DATABASE)[0][0],
        outbox=pg.execute("SELECT count(*) FROM outbox", dbname=DATABASE)[0][0],
    )


def postgres_description(pg: PgCluster) -> str:
    version = pg.execute("SHOW server_version")[0][0]
    settings = dict(pg.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers')"))
    described = ", ".join(f"{name}={settings[name]}" for name in sorted(settings))
    return f"PostgreSQL {version} (throwaway stack_harness.pg_cluster cluster: {described})"


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(f"signal {signum}")


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
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return run(options)
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped", file=sys.stderr)
        return 130
    except (LoadToolError, profiling.ProfilerUnavailable, GunicornHarnessError, PgClusterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
