"""The simulator itself: per-chat queues served by ``max_connections`` sender threads.

What it reproduces of Telegram, and why it exists, is in the package docstring
(``stack_harness.delivery_simulator``).
"""
from __future__ import annotations

import heapq
import itertools
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Self

import requests

from settings.telegram import SECRET_HEADER

from .records import CONNECTION_ERROR, TIMEOUT, Attempt, DeliveryReport, UpdateRecord
from .telegram_rules import Backoff, chat_key

IDLE_WAIT = 0.5  # longest a sender sleeps on the condition before re-checking the clock


@dataclass
class _Job:
    record: UpdateRecord
    duplicate: bool
    failures: int = 0


class DeliverySimulator:
    """Telegram's webhook delivery for a stream of updates; see the package docstring."""

    def __init__(self, url: str, secret: str | None, *, max_connections: int = 40, request_timeout: float = 10.0,
                 backoff: Backoff = Backoff(), duplicate_probability: float = 0.0, time_limit: float = 120.0,
                 execute_response: Callable[[dict], Any] | None = None, seed: int | None = None) -> None:
        if max_connections < 1 or not 0.0 <= duplicate_probability <= 1.0:
            raise ValueError("need max_connections >= 1 and 0 <= duplicate_probability <= 1")
        self.url = url
        self.secret = secret
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.backoff = backoff
        self.duplicate_probability = duplicate_probability
        self.time_limit = time_limit
        self.execute_response = execute_response
        self._rng = random.Random(seed)
        self._lock = threading.Condition()
        # A chat is in _queues while it has work: ready, backing off or in flight.
        self._queues: dict[Hashable, deque[_Job]] = {}
        self._ready: deque[Hashable] = deque()
        self._backing_off: list[tuple[float, int, Hashable]] = []
        self._sequence = itertools.count()
        self._records: list[UpdateRecord] = []
        self._unsettled = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._deadline = float("inf")

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DeliverySimulator:
        if self._threads:
            return self
        self._deadline = time.monotonic() + self.time_limit
        for index in range(self.max_connections):
            thread = threading.Thread(target=self._send_loop, name=f"delivery-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop sending; requests in flight end within ``request_timeout``."""
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(self.request_timeout + 2.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._deadline

    # --- the caller's side -----------------------------------------------------------------------

    def submit(self, update: dict) -> UpdateRecord:
        """Queue ``update`` (it must carry its ``update_id``) behind its chat's earlier updates."""
        if not isinstance(update.get("update_id"), int):
            raise TypeError("an update needs an integer update_id")
        record = UpdateRecord(update, chat_key(update), time.monotonic())
        with self._lock:
            self._records.append(record)
            self._enqueue(_Job(record, duplicate=False))
        return record

    def resend(self, record: UpdateRecord) -> None:
        """Deliver ``record``'s update once more, same update_id, after its chat's queued updates
        (a duplicate on demand, as when Telegram did not get our answer)."""
        with self._lock:
            record.duplicates_sent += 1
            self._enqueue(_Job(record, duplicate=True))

    def drain(self, timeout: float) -> bool:
        """Wait until every queued update (duplicates included) is acknowledged; False if time ran out first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._unsettled:
                remaining = min(deadline, self._deadline) - time.monotonic()
                if remaining <= 0 or self._stopping.is_set():
                    return False
                self._lock.wait(min(remaining, IDLE_WAIT))
            return True

    @property
    def pending(self) -> int:
        """Updates (and duplicates) queued or in flight."""
        with self._lock:
            return self._unsettled

    def report(self) -> DeliveryReport:
        with self._lock:
            return DeliveryReport(list(self._records))

    # --- scheduling (all under self._lock) -------------------------------------------------------------

    def _enqueue(self, job: _Job) -> None:
        key = job.record.chat_key
        self._unsettled += 1
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(job)  # its chat is already scheduled: it waits its turn
            return
        self._queues[key] = deque([job])
        self._ready.append(key)
        self._lock.notify()

    def _next_job(self) -> tuple[Hashable, _Job] | None:
        """The head job of a chat that may send now; None once stopped or past the time limit."""
        with self._lock:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now >= self._deadline:
                    self._lock.notify_all()  # drain() must notice the deadline too
                    return None
                while self._backing_off and self._backing_off[0][0] <= now:
                    self._ready.append(heapq.heappop(self._backing_off)[2])
                if self._ready:
                    key = self._ready.popleft()
                    return key, self._queues[key][0]
                next_due = self._backing_off[0][0] if self._backing_off else now + IDLE_WAIT
                self._lock.wait(max(0.001, min(next_due, self._deadline, now + IDLE_WAIT) - now))
            return None

    def _settle(self, key: Hashable, job: _Job, attempt: Attempt) -> None:
        with self._lock:
            queue = self._queues[key]
            if attempt.ok:
                queue.popleft()
                self._unsettled -= 1
                if not job.duplicate and self._rng.random() < self.duplicate_probability:
                    job.record.duplicates_sent += 1
                    self._enqueue(_Job(job.record, duplicate=True))
                if queue:
                    self._ready.append(key)
                else:
                    del self._queues[key]
            else:
                job.failures += 1
                due = time.monotonic() + self.backoff.delay(job.failures, self._rng)
                heapq.heappush(self._backing_off, (due, next(self._sequence), key))
            self._lock.notify_all()

    # --- sending -----------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        session = requests.Session()  # a keep-alive connection per sender, like Telegram's
        try:
            while True:
                picked = self._next_job()
                if picked is None:
                    return
                key, job = picked
                self._settle(key, job, self._attempt(session, job))
        finally:
            session.close()

    def _attempt(self, session: requests.Session, job: _Job) -> Attempt:
        """POST once. Only this thread touches ``job.record`` now: its chat has one job in flight."""
        record = job.record
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers[SECRET_HEADER] = self.secret
        started = time.monotonic()
        response = None
        try:
            response = session.post(self.url, data=json.dumps(record.update), headers=headers,
                                    timeout=self.request_timeout)
            status: int | str = response.status_code
        except requests.Timeout:
            status = TIMEOUT
        except requests.RequestException:
            status = CONNECTION_ERROR
        attempt = Attempt(started, time.monotonic() - started, status, job.duplicate)
        record.attempts.append(attempt)
        if attempt.ok:
            if not job.duplicate:
                record.acknowledged_at = time.monotonic()
            self._execute_response_method(record, response)
            record.acknowledged.set()  # after the method ran, so a waiter sees the bot's reply
        return attempt

    def _execute_response_method(self, record: UpdateRecord, response: requests.Response) -> None:
        """Telegram executes a method named in a 2xx body and tells no one how it went."""
        if self.execute_response is None or not response.content:
            return
        try:
            body = response.json()
        except ValueError:
            return  # Telegram ignores a body it cannot read
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            return
        try:
            record.responses.append(self.execute_response(body))
        except Exception as error:  # noqa: BLE001 - the executor's problem must not kill a sender
            record.response_errors.append(f"{type(error).__name__}: {error}")
