"""The servers ``python -m bench.compare`` measures, and how each one is started.

Every target runs under gunicorn on 127.0.0.1 through the same harness
(stack_harness.gunicorn_server.GunicornServer), with the same workers and
threads; one at a time, stopped before the next starts. The peers come
from ``bench/peers/peers.procfile`` (``bench/peers/gunicorn.conf.py``), the
server from the Procfile's ``web:`` line with its own gunicorn.conf.py.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.aiogram_venv import pinned_version
from bench.compare_options import CompareOptions
from bench.emulator_process import EmulatorProcess
from bench.ledger import DATABASE as SERVER_DATABASE
from bench.targets import BOT_TOKEN, REPO, WEBHOOK_SECRET, full_env, shape_env
from stack_harness.gunicorn_server import GunicornServer
from stack_harness.pg_cluster import PgCluster

PEERS_PROCFILE = "bench/peers/peers.procfile"
LEAN_DATABASE = "lean"
LEAN_SCHEMA = REPO / "bench" / "peers" / "lean_schema.sql"
DEFAULT_DB_MAX_CONNECTIONS = 20  # the server's own default (settings/loading.py)
START_TIMEOUT = 60.0  # the server migrates a fresh database before its workers fork


@dataclass(frozen=True)
class Spec:
    name: str
    what: str
    track: bool             # its answers name their update, so wrk checks each one (bench/webhook.lua)
    database: str | None    # its database on the throwaway cluster
    check: str              # how correctness is verified: "ledger", "replies" or "none"


SPECS = {spec.name: spec for spec in (
    Spec("bare", "Flask, parse the JSON, answer 200 (bench/bare_app.py): the ceiling", False, None, "none"),
    Spec("lean", "Flask, secret, parse, ONE statement (ledger row + user upsert), commit, reply on the answer "
                 "(bench/peers/lean_app.py)", True, LEAN_DATABASE, "ledger"),
    Spec("naive", "Flask + pyTelegramBotAPI, send_message inline before answering (bench/peers/naive_app.py)",
         False, None, "replies"),
    Spec("aiogram", f"aiogram {pinned_version()} on aiohttp, handle_in_background=False, reply through the "
                    "Bot API (bench/peers/aiogram_app.py)", False, None, "replies"),
    Spec("server", "this server: the Procfile's web line on PostgreSQL, reply on the answer", True,
         SERVER_DATABASE, "ledger"),
)}


@dataclass(frozen=True)
class Shared:
    """What every target may use, made once per run."""

    pg: PgCluster
    emulator: EmulatorProcess
    aiogram_gunicorn: Path | None  # the aiogram venv's gunicorn, if aiogram is measured
    counts_statements: bool        # pg_stat_statements is loaded


@dataclass
class Started:
    spec: Spec
    server: GunicornServer
    settings: dict[str, str]  # how it was configured, for the report


def environment(spec: Spec, shared: Shared, options: CompareOptions) -> tuple[dict[str, str], dict[str, str]]:
    """The target's environment, and the part of it the report shows."""
    bot = {"BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_URL": shared.emulator.url, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    shape = shape_env(options.point(max(options.connections)))
    if spec.name == "bare":
        return shape, {"worker_class": "gthread"}
    if spec.name == "lean":
        pool = {"pool": f"{options.threads} per worker, no overflow"}
        return {**shape, **bot, "DATABASE_URL": shared.pg.url(LEAN_DATABASE)}, {"worker_class": "gthread", **pool}
    if spec.name == "naive":
        return {**shape, **bot}, {"worker_class": "gthread"}
    if spec.name == "aiogram":
        assert shared.aiogram_gunicorn is not None
        return ({**shape, **bot, "AIOGRAM_GUNICORN": str(shared.aiogram_gunicorn)},
                {"worker_class": f"aiohttp.GunicornWebWorker x {options.workers} (one event loop each)"})
    env = full_env(shared.pg.url(SERVER_DATABASE), shared.emulator.url, options.point(max(options.connections)))
    shown = {"DB_MAX_CONNECTIONS": env.get("DB_MAX_CONNECTIONS", f"{DEFAULT_DB_MAX_CONNECTIONS} (the default)"),
             "FLOOD_LIMIT_PER_MINUTE": env["FLOOD_LIMIT_PER_MINUTE"]}
    return env, {"worker_class": "gthread, probes in a lane of their own", **shown, **options.server_env}


def prepare_database(spec: Spec, pg: PgCluster) -> None:
    """A fresh database: the server migrates its own at start; the lean peer's tables are made here."""
    if spec.database is None:
        return
    pg.create_database(spec.database)
    if spec.name == "lean":
        pg.execute(LEAN_SCHEMA.read_text(), dbname=LEAN_DATABASE)


@contextmanager
def start_target(spec: Spec, shared: Shared, options: CompareOptions) -> Iterator[Started]:
    """The target running with all its workers up; stopped (every process) when the block ends."""
    env, shown = environment(spec, shared, options)
    prepare_database(spec, shared.pg)
    procfile, process_type = ("Procfile", "web") if spec.name == "server" else (PEERS_PROCFILE, spec.name)
    server = GunicornServer(REPO, env, procfile=procfile, process_type=process_type)
    try:
        server.start(timeout=START_TIMEOUT)
        server.wait_for_workers(options.workers)
        yield Started(spec, server, shown)
    finally:
        server.close()
