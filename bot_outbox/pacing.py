"""Outgoing pace: Telegram allows about 30 calls a second per bot, shared by every sender."""
from __future__ import annotations

import threading
import time


class RateLimiter:
    """At most ``per_second`` turns a second across this worker's senders (a token bucket)."""

    def __init__(self, per_second: float, burst: float | None = None):
        self._interval = 1.0 / per_second
        self._burst = burst if burst is not None else max(1.0, per_second)
        self._tokens = self._burst
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def wait_for_turn(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self._burst, self._tokens + (now - self._updated) / self._interval)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                delay = (1 - self._tokens) * self._interval
            time.sleep(delay)  # pacing, not synchronisation: the next token is due then
