"""The load generator: wrk driven by bench/webhook.lua.

wrk is a C event loop that uses a few percent of one core for thousands of
requests per second, which matters on a 2-core machine that also runs
gunicorn and PostgreSQL: a Python client would take CPU from the server it
measures. The Lua script gives every request its own update_id and reports
its counters as one JSON line, parsed here.
"""
from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from botapi_emulator.updates import text_message_update, user_json

SCRIPT = Path(__file__).resolve().parent / "webhook.lua"
# Stands for the update_id in the body templates; digits only, so it is both
# valid JSON where a number goes and a literal Lua pattern for string.gsub.
PLACEHOLDER = "987654321987654"
USERS = 1000
FIRST_USER_ID = 10_000_001
RESULT_PREFIX = "BENCH_RESULT "


class LoadToolError(RuntimeError):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run saw. Latencies in milliseconds."""

    seconds: float
    requests: int
    ok: int
    non_2xx: int
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]
    latency_max_ms: float
    unmatched: int
    unanswered_ids: list[int] = field(repr=False)
    load_cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        """Connect/read/write failures and timeouts (non-2xx answers are counted apart)."""
        return sum(count for kind, count in self.socket_errors.items() if kind != "status")


def wrk_version() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        return "not installed"
    # wrk prints its version in the usage text, on stderr, and exits 1.
    run = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    first_line = (run.stdout + run.stderr).splitlines()[0]
    return first_line.split(" Copyright")[0].strip()  # e.g. "wrk 4.2.0 [epoll]"


def start_update(user_no: int) -> dict:
    """A private ``/start`` from user number ``user_no``, with PLACEHOLDER as its update_id.

    The first name ends in ``#<update_id>``: the full server greets the user
    by name, so each reply names the update it answers and the script can
    tell exactly which ids were acknowledged.
    """
    user = user_json(FIRST_USER_ID + user_no, first_name=f"Bench{user_no:04d} #{PLACEHOLDER}")
    update = text_message_update(int(PLACEHOLDER), int(PLACEHOLDER), int(time.time()), user, "/start")
    return update


def write_bodies_file(path: Path, secret: str, users: int = USERS) -> Path:
    """A Lua file returning the secret, the placeholder and one body template per user."""
    templates = []
    for user_no in range(users):
        text = json.dumps(start_update(user_no), separators=(",", ":"))
        # Long brackets keep the JSON verbatim; json.dumps output is ASCII.
        assert "]==]" not in text and text.count(PLACEHOLDER) >= 2, text
        templates.append(f"[==[{text}]==]")
    path.write_text(
        "return {\n"
        f"  secret = {json.dumps(secret)},\n"
        f"  placeholder = {json.dumps(PLACEHOLDER)},\n"
        "  templates = {\n    " + ",\n    ".join(templates) + "\n  },\n"
        "}\n"
    )
    return path


class WrkRun:
    """One closed-loop wrk run against ``url``/webhook, started at construction.

    ``first_id`` must differ by more than threads * 10**8 between runs against
    one database (webhook.lua's STRIDE), so that no update_id repeats.
    ``wait()`` lets it run its course; ``stop()`` ends it early with SIGINT,
    on which wrk still reports what it saw (the ids it left unanswered included).
    """

    def __init__(self, url: str, bodies: Path, *, first_id: int, seconds: float, connections: int,
                 threads: int = 1, track: bool = False, timeout_seconds: int = 10):
        binary = shutil.which("wrk")
        if binary is None:
            raise LoadToolError("wrk is not installed: apt-get install -y wrk")
        command = [
            binary, f"--threads={threads}", f"--connections={connections}", f"--duration={int(seconds)}s",
            f"--timeout={timeout_seconds}s", f"--script={SCRIPT}", url,
            "--", str(bodies), str(first_id), "1" if track else "0",
        ]
        self._deadline = seconds + timeout_seconds + 30
        self._rusage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)

    def wait(self) -> LoadResult:
        try:
            stdout, stderr = self._process.communicate(timeout=self._deadline)
        finally:
            if self._process.poll() is None:  # interrupted or hung: never leave wrk behind
                self._process.kill()
                self._process.wait()
        if self._process.returncode != 0:
            raise LoadToolError(f"wrk exited with {self._process.returncode}:\n{stdout}\n{stderr}")
        # wrk is our only child reaped in between, so the difference is its CPU.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - self._rusage.ru_utime) + (after.ru_stime - self._rusage.ru_stime)
        return _parse(stdout, stderr, cpu)

    def stop(self) -> LoadResult:
        self._process.send_signal(signal.SIGINT)
        return self.wait()

    def __enter__(self) -> WrkRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Whatever happened in the block, wrk does not outlive it."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


def run_wrk(url: str, bodies: Path, **options) -> LoadResult:
    """A whole wrk run (see ``WrkRun`` for the options)."""
    return WrkRun(url, bodies, **options).wait()


def _parse(stdout: str, stderr: str, cpu_seconds: float) -> LoadResult:
    line = next((line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)), None)
    if line is None:
        raise LoadToolError(f"wrk printed no result line:\n{stdout}\n{stderr}")
    raw = json.loads(line[len(RESULT_PREFIX):])
    return LoadResult(
        seconds=raw["duration_us"] / 1e6,
        requests=raw["requests"],
        ok=raw["ok"],
        non_2xx=raw["other"],
        socket_errors=raw["errors"],
        latency_ms={key: value / 1000 for key, value in raw["latency_us"].items()},
        latency_max_ms=raw["latency_max_us"] / 1000,
        unmatched=raw["unmatched"],
        unanswered_ids=[int(value) for value in raw["unanswered_ids"]],
        load_cpu_seconds=cpu_seconds,
    )
