"""The database check behind /health, the webhook's outage breaker, and pool-timeout tracking.

The probe runs on its own one-connection engine, so an exhausted main pool
cannot make it wait, and in its own thread, so a database that accepts TCP
but never answers costs /health at most ``deadline`` seconds: one probe runs
at a time and callers wait on it with a deadline.

While the database is known to be down, webhook requests answer 503 at once
instead of each tying up a request thread until a timeout; the probe, kicked
by those requests and by /health, decides when it is back.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from database import deadline
from database.errors import describe_error
from settings import Settings


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
    FRESH_SECONDS = 0.5  # results younger than this are reused, not re-probed

    def __init__(self, engine: Engine, deadline: float):
        self._engine = engine
        self._deadline = deadline
        self._lock = threading.Lock()
        self._current: _Attempt | None = None
        self._last: ProbeResult | None = None

    @classmethod
    def for_settings(cls, settings: Settings, url, deadline: float = 1.0) -> "DatabaseProbe":
        return cls(create_probe_engine(settings, url), deadline)

    def check(self) -> ProbeResult:
        """A fresh verdict within ``deadline`` seconds."""
        attempt, cached = self._fresh_or_start()
        if cached is not None:
            return cached
        remaining = self._deadline - (time.monotonic() - attempt.started)
        if remaining > 0 and attempt.done.wait(remaining):
            return attempt.result
        return self._hanging(attempt)

    def known_down(self) -> bool:
        """Never waits: True from a failure until a probe succeeds again."""
        with self._lock:
            last = self._last
            if last is None or last.ok:
                return False
            if time.monotonic() - last.finished >= self.FRESH_SECONDS and self._current is None:
                self._start_locked()  # time to ask the database again
            return True

    def report_failure(self, error: str) -> None:
        """A request saw the database fail: trip the breaker until a probe succeeds."""
        with self._lock:
            self._last = ProbeResult(False, None, error, time.monotonic())

    def dispose(self, close: bool = True) -> None:
        self._engine.dispose(close=close)

    def _fresh_or_start(self) -> tuple[_Attempt | None, ProbeResult | None]:
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last.finished < self.FRESH_SECONDS:
                return None, last
            return self._current or self._start_locked(), None

    def _start_locked(self) -> _Attempt:
        self._current = _Attempt()
        threading.Thread(target=self._probe, args=(self._current,), name="health-probe", daemon=True).start()
        return self._current

    def _hanging(self, attempt: _Attempt) -> ProbeResult:
        """No answer in time is a verdict too: it trips the breaker until the probe returns."""
        stuck_for = time.monotonic() - attempt.started
        result = ProbeResult(False, None, f"database did not answer within {stuck_for:.1f}s", time.monotonic())
        with self._lock:
            if self._current is attempt:
                self._last = result
        return result

    def _probe(self, attempt: _Attempt) -> None:
        started = time.monotonic()
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            result = ProbeResult(True, (time.monotonic() - started) * 1000, None, time.monotonic())
        except Exception as error:
            result = ProbeResult(False, None, describe_error(error), time.monotonic())
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
    engine = create_engine(url, **options)
    if not settings.is_local:
        @event.listens_for(engine, "do_connect")
        def _connect(dialect, _record, cargs, cparams):
            return deadline.connect(dialect, cargs, cparams, round_trip_seconds=settings.db_client_timeout,
                                    connect_seconds=settings.db_connect_timeout)
    return engine


class PoolTimeouts:
    """When checkouts last timed out, for /health's "pool saturated" verdict."""

    def __init__(self):
        self._last = 0.0

    def record(self) -> None:
        self._last = time.monotonic()

    def seconds_since_last(self) -> float | None:
        return None if not self._last else time.monotonic() - self._last
