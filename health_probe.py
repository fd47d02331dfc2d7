"""The database check behind /health, bounded in time whatever the database does.

It runs on its own one-connection engine, so an exhausted main pool cannot
make it wait, and in its own thread, so a database that accepts TCP but never
answers (frozen, or a black-holed network) costs /health at most
``deadline`` seconds: one probe runs at a time and callers wait on it with a
deadline.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from config import Settings


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: float | None
    error: str | None
    finished: float  # time.monotonic()


class _Attempt:
    def __init__(self):
        self.started = time.monotonic()
        self.done = threading.Event()
        self.result: ProbeResult | None = None


class DatabaseProbe:
    CACHE_SECONDS = 1.0  # an uptime monitor hammering /health costs one query a second

    def __init__(self, engine: Engine, deadline: float):
        self._engine = engine
        self._deadline = deadline
        self._lock = threading.Lock()
        self._current: _Attempt | None = None
        self._last: ProbeResult | None = None

    @classmethod
    def for_settings(cls, settings: Settings, url, deadline: float = 1.5) -> "DatabaseProbe":
        return cls(create_probe_engine(settings, url), deadline)

    def check(self) -> ProbeResult:
        with self._lock:
            if self._last and time.monotonic() - self._last.finished < self.CACHE_SECONDS:
                return self._last
            attempt = self._current
            if attempt is None:
                attempt = self._current = _Attempt()
                threading.Thread(target=self._probe, args=(attempt,), name="health-probe", daemon=True).start()
        remaining = self._deadline - (time.monotonic() - attempt.started)
        if remaining > 0 and attempt.done.wait(remaining):
            return attempt.result
        stuck_for = time.monotonic() - attempt.started
        return ProbeResult(False, None, f"database did not answer within {stuck_for:.1f}s", time.monotonic())

    def dispose(self, close: bool = True) -> None:
        self._engine.dispose(close=close)

    def _probe(self, attempt: _Attempt) -> None:
        started = time.monotonic()
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            result = ProbeResult(True, (time.monotonic() - started) * 1000, None, time.monotonic())
        except Exception as error:
            message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            result = ProbeResult(False, None, f"{type(error).__name__}: {message}", time.monotonic())
        with self._lock:
            attempt.result = result
            self._last = result
            self._current = None
        attempt.done.set()


def create_probe_engine(settings: Settings, url) -> Engine:
    """``url`` is the main engine's (already resolved, e.g. SQLite under instance/)."""
    options: dict = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 1, "pool_recycle": settings.db_pool_recycle}
    if settings.is_local:
        options["connect_args"] = {"timeout": 1, "check_same_thread": False}
    else:
        options["connect_args"] = {
            "connect_timeout": 2,
            "application_name": "bot-health-probe",
            "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2,
        }
    return create_engine(url, **options)
