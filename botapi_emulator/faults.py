"""Injected faults and latency for bot-surface calls: a Telegram that misbehaves on demand.

Why: the bot's retry, back-off and timeout code only runs when Telegram
answers 429 or 5xx, is slow, or never answers; its give-up paths only run
when Telegram refuses for good (a 400 such as a lost admin right, a 403 from
a user who blocked the bot).  Faults are consumed in the
order they were injected; each applies to one method (case-insensitive) or
to every method with ``"*"``.  Calls made through a webhook response are not
affected (they never travel over the bot's HTTP client).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .errors import EmulatorStopping, bad_request, forbidden, server_error, too_many_requests

FAULT_KINDS = ("429", "5xx", "400", "403", "latency", "hang")
# What a refusal fault says, as Telegram words the usual causes.
REFUSALS = {"400": "not enough rights to manage chat invite links", "403": "bot was blocked by the user"}
ANY_METHOD = "*"


@dataclass
class Fault:
    method: str
    kind: str
    remaining: int | None  # None: until cleared
    retry_after: int = 2
    status: int = 500
    delay: float = 1.0

    def applies_to(self, method: str) -> bool:
        return self.method == ANY_METHOD or self.method.lower() == method.lower()


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._faults: list[Fault] = []
        self._latency: dict[str, float] = {}
        self._release = threading.Event()
        self._stopping = threading.Event()
        self._hanging = 0

    # --- configuration ---------------------------------------------------------------------

    def inject(self, method: str, kind: str, times: int | None = 1, retry_after: int = 2,
               status: int = 500, delay: float = 1.0) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if kind == "5xx" and not 500 <= status <= 599:
            raise ValueError(f"a 5xx fault needs a status in 500..599, got {status}")
        fault = Fault(method, kind, times, retry_after, status, delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def set_latency(self, method: str, seconds: float) -> None:
        """Answer every call to ``method`` (or ``"*"``) only after ``seconds``; 0 removes it."""
        with self._lock:
            if seconds > 0:
                self._latency[method.lower()] = seconds
            else:
                self._latency.pop(method.lower(), None)

    def clear(self) -> None:
        """Forget pending faults and latency (requests already held stay held: see ``release_hangs``)."""
        with self._lock:
            self._faults.clear()
            self._latency.clear()

    def release_hangs(self) -> None:
        """Let every held call go on: it executes and is answered (if its client still listens)."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()

    def stop(self) -> None:
        """Drop every held or delayed call unanswered."""
        with self._lock:
            self._stopping.set()
        self.release_hangs()

    @property
    def hanging_count(self) -> int:
        with self._lock:
            return self._hanging

    def wait_for_hangs(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until ``count`` calls are being held (so a test knows the bot is stuck)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._hanging < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"waited {timeout:g}s for {count} held call(s), {self._hanging} held")
                self._lock.wait(remaining)

    # --- applying ---------------------------------------------------------------------------

    def before_call(self, method: str) -> None:
        """Apply latency and the next matching fault; raise the error a fault answers with."""
        fault, latency = self._take(method)
        if latency:
            self._sleep(latency)
        if fault is None:
            return
        if fault.kind == "429":
            raise too_many_requests(fault.retry_after)
        if fault.kind == "5xx":
            raise server_error(fault.status)
        if fault.kind == "400":
            raise bad_request(REFUSALS["400"])
        if fault.kind == "403":
            raise forbidden(REFUSALS["403"])
        if fault.kind == "latency":
            self._sleep(fault.delay)
        elif fault.kind == "hang":
            self._hold()

    def _take(self, method: str) -> tuple[Fault | None, float]:
        with self._lock:
            latency = self._latency.get(method.lower(), self._latency.get(ANY_METHOD, 0.0))
            for fault in self._faults:
                if fault.applies_to(method):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault, latency
            return None, latency

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise EmulatorStopping()

    def _hold(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                raise EmulatorStopping()
            release = self._release
            self._hanging += 1
            self._lock.notify_all()
        try:
            release.wait()
        finally:
            with self._lock:
                self._hanging -= 1
                self._lock.notify_all()
        if self._stopping.is_set():
            raise EmulatorStopping()
