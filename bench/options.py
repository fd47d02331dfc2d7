"""The webhook benchmark's command line (``python -m bench.webhook_bench --help``)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass


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


def parse_args(argv: list[str] | None = None, *, description: str | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_bench", description=description)
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
    server_env = server_env_of(parser, args.server_env)
    return Options(args.seconds, args.connections, args.workers, args.threads, args.wrk_threads,
                   server_env, args.profile, args.any_split)


def server_env_of(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, str]:
    """The repeated ``--server-env NAME=VALUE`` options as a dict; a malformed one is a usage error."""
    server_env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--server-env wants NAME=VALUE, got {item!r}")
        server_env[name] = value
    return server_env
