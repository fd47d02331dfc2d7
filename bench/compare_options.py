"""The comparison's command line (``python -m bench.compare --help``)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bench.options import Options, server_env_of

TARGET_ORDER = ("bare", "lean", "naive", "aiogram", "server")
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class CompareOptions:
    seconds: int
    connections: tuple[int, ...]
    targets: tuple[str, ...]
    workers: int
    threads: int
    wrk_threads: int
    users: int
    latency: float
    server_env: dict[str, str]
    any_split: bool
    disturbed_retries: int
    quiet_wait: float
    results_dir: Path

    def point(self, connections: int) -> Options:
        """The single-point options that bench.measurement.measure and bench.targets.full_env take."""
        return Options(self.seconds, connections, self.workers, self.threads, self.wrk_threads,
                       self.server_env, profile=False, any_split=self.any_split)


def _numbers(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"want numbers separated by commas, got {text!r}") from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("want at least one number, all >= 1")
    return values


def _targets(text: str) -> tuple[str, ...]:
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = chosen - set(TARGET_ORDER)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"targets are {', '.join(TARGET_ORDER)}; got {text!r}")
    return tuple(name for name in TARGET_ORDER if name in chosen)


def parse_args(argv: list[str] | None = None, *, description: str | None = None) -> CompareOptions:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=description)
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per point (default 10)")
    parser.add_argument("--connections", type=_numbers, default=(16, 40, 100),
                        help="wrk keep-alive connections, one point each (default 16,40,100)")
    parser.add_argument("--targets", type=_targets, default=TARGET_ORDER,
                        help=f"which servers, run in this order: {','.join(TARGET_ORDER)} (default all)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of every target (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker (default 8)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--users", type=int, default=20_000, help="distinct senders of /start (default 20000)")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds the Bot API emulator takes to answer every call (default 0.05)")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the server, e.g. DB_MAX_CONNECTIONS=30 (repeatable)")
    parser.add_argument("--any-split", action="store_true",
                        help="measure however the connections land on the workers (default: restart a run "
                             "whose connections landed lopsided, see bench/worker_split.py)")
    parser.add_argument("--disturbed-retries", type=int, default=2,
                        help="measure a point again, at most this many times, while other processes took a "
                             "share of the cores during it; the least disturbed run is kept (default 2)")
    parser.add_argument("--quiet-wait", type=float, default=30.0,
                        help="before measuring a disturbed point again, wait at most this many seconds for the "
                             "machine to calm down (default 30)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS,
                        help="where compare.json and compare.png go (default bench/results)")
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.workers < 1 or args.threads < 1 or args.users < 1 or args.latency < 0 \
            or args.disturbed_retries < 0 or args.quiet_wait < 0:
        parser.error("need --seconds, --workers, --threads, --users >= 1; --latency, --disturbed-retries, "
                     "--quiet-wait >= 0")
    if min(args.connections) < args.wrk_threads or args.wrk_threads < 1:
        parser.error("every --connections value must be >= --wrk-threads >= 1")
    server_env = server_env_of(parser, args.server_env)
    return CompareOptions(args.seconds, args.connections, args.targets, args.workers, args.threads,
                          args.wrk_threads, args.users, args.latency, server_env, args.any_split,
                          args.disturbed_retries, args.quiet_wait, args.results_dir)
