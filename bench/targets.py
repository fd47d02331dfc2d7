"""The two targets the benchmark measures, one after the other (never at the same time).

bare  bench/bare_app.py under bench/peers/gunicorn.conf.py: POST /webhook -> 200.
full  the Procfile's web process on a fresh database of a throwaway PostgreSQL,
      with the Bot API emulator as Telegram.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from bench import profiling
from bench.ledger import DATABASE, LedgerCheck, check_ledger, settle
from bench.measurement import SPLIT_CHECK_SECONDS, IdRuns, Measurement, measure
from bench.options import Options
from bench.worker_split import busiest_worker
from botapi_emulator import BotApiEmulator
from stack_harness.gunicorn_server import GunicornServer
from stack_harness.pg_cluster import PgCluster

REPO = Path(__file__).resolve().parents[1]
BARE_PROCFILE = "bench/bare.procfile"
BOT_TOKEN = "123456:BENCH-token_for-the-benchmark"
WEBHOOK_SECRET = "bench-secret_0123456789"
CHANNEL_ID = -1001000000001
LOG_TAIL_LINES = 40
# Server settings the benchmark changes (see full_env); --server-env may override them.
FIXED_SERVER_ENV = {"FLOOD_LIMIT_PER_MINUTE": "0"}


def shape_env(options: Options) -> dict[str, str]:
    """Workers and threads, read by both gunicorn configs from the same variables."""
    return {"WEB_CONCURRENCY": str(options.workers), "GUNICORN_THREADS": str(options.threads)}


def bench_bare(options: Options, bodies: Path, ids: IdRuns) -> Measurement:
    with GunicornServer(REPO, shape_env(options), procfile=BARE_PROCFILE, process_type="bare") as server:
        server.wait_for_workers(options.workers)
        return measure("bare", server, bodies, ids, options, track=False)


def full_env(database_url: str, api_url: str, options: Options) -> dict[str, str]:
    """The real server's settings: defaults except what the benchmark must set.

    The connection budget is the server's default (DB_MAX_CONNECTIONS=20):
    any shape fits it, threads sharing connections when they must. The
    per-user flood limit is off: 1000 users sharing hundreds
    of updates per second would each pass 30 a minute within a minute, and
    the server would then answer without its /start reply, which is not the
    path measured here (the flood counter's SQL still runs on every update).
    """
    return {
        "BOT_TOKEN": BOT_TOKEN,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELEGRAM_API_URL": api_url,
        "DATABASE_URL": database_url,
        "CHANNEL_ID": str(CHANNEL_ID),
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


def postgres_description(pg: PgCluster) -> str:
    version = pg.execute("SHOW server_version")[0][0]
    settings = dict(pg.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers')"))
    described = ", ".join(f"{name}={settings[name]}" for name in sorted(settings))
    return f"PostgreSQL {version} (throwaway stack_harness.pg_cluster cluster: {described})"
