"""Deliver a stream of updates to a webhook the way Telegram does, and report what became of each.

Why not the emulator's own delivery: ``BotApiEmulator.deliver`` sends one
update per call and blocks its caller, which suits a test that acts as one
user. A chaos run or a benchmark needs a stream: many chats at once, a bound
on connections, per-chat order, retries that outlive an outage of the
server, duplicates on demand, and afterwards a record per update to check
"nothing lost, nothing doubled" against.

What it reproduces of Telegram (see platform-facts and the Bot API docs):

- at most ``max_connections`` requests in flight at once;
- per chat (per user for private chats, whose chat id is the user's id) one
  update in flight, in order: the next waits until the previous was
  acknowledged, as Telegram's per-chat queue does;
- anything but a 2xx, a timeout or a failed connection is retried with
  exponential back-off and jitter, under the same ``update_id``; while an
  update backs off, its chat waits but its connection serves other chats;
- a ``{"method": ...}`` in a 2xx body is executed (handed to
  ``execute_response``, e.g. the emulator's ``surface.execute_from_webhook_response``)
  and its outcome is reported to no one;
- on demand, an acknowledged update is sent again (``duplicate_probability``),
  as Telegram does when our answer got lost on the way.

Everything is bounded: every request has ``request_timeout``, and nothing is
attempted ``time_limit`` seconds after ``start()``. An update not acknowledged
by then is reported as never acknowledged.

Usage::

    with DeliverySimulator(url, secret, max_connections=8,
                           execute_response=emulator.surface.execute_from_webhook_response) as sim:
        record = sim.submit(update)
        record.wait(10)                 # acknowledged (and its response method executed)?
        sim.drain(30)
        report = sim.report()           # report.never_acknowledged, report.server_errors, ...
"""
from __future__ import annotations

import heapq
import itertools
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

import requests

__all__ = ["Attempt", "Backoff", "DeliveryReport", "DeliverySimulator", "UpdateRecord", "chat_key"]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection-error"
IDLE_WAIT = 0.5  # longest a sender sleeps on the condition before re-checking the clock


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number ``failures`` (1-based): ``first * factor**(failures-1)``, capped, with jitter.

    The jitter (a random cut of up to ``jitter`` of the delay) keeps the
    retries of many chats failing together from arriving together.
    """

    first: float = 0.1
    factor: float = 2.0
    cap: float = 2.0
    jitter: float = 0.5

    def delay(self, failures: int, rng: random.Random) -> float:
        base = min(self.cap, self.first * self.factor ** max(0, failures - 1))
        return base * (1.0 - self.jitter * rng.random())


@dataclass(frozen=True)
class Attempt:
    """One POST: when it started (``time.monotonic()``), how long it took, what came back.

    ``status`` is the HTTP status, or ``"timeout"`` / ``"connection-error"``
    when no answer came. ``duplicate`` marks a deliberate re-send of an
    update that was already acknowledged.
    """

    started: float
    elapsed: float
    status: int | str
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return isinstance(self.status, int) and 200 <= self.status < 300

    @property
    def server_error(self) -> bool:
        return isinstance(self.status, int) and self.status >= 500

    @property
    def ambiguous(self) -> bool:
        """No answer: the server may have committed the update (and lost its reply) or not."""
        return isinstance(self.status, str)


@dataclass
class UpdateRecord:
    """What became of one update: its attempts, its acknowledgement, the methods its answers carried."""

    update: dict
    chat_key: Hashable
    submitted_at: float
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged_at: float | None = None
    duplicates_sent: int = 0
    responses: list[Any] = field(default_factory=list)  # what execute_response returned, per executed method
    response_errors: list[str] = field(default_factory=list)
    acknowledged: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def update_id(self) -> int:
        return self.update["update_id"]

    @property
    def kind(self) -> str:
        return next((key for key in self.update if key != "update_id"), "empty")

    @property
    def statuses(self) -> list[int | str]:
        return [attempt.status for attempt in self.attempts]

    @property
    def latency(self) -> float | None:
        """Seconds from submission to acknowledgement (queueing and retries included)."""
        return None if self.acknowledged_at is None else self.acknowledged_at - self.submitted_at

    @property
    def first_response(self) -> Any:
        """The method executed from the first acknowledgement's body, if any."""
        return self.responses[0] if self.responses else None

    @property
    def had_ambiguous_attempt(self) -> bool:
        """An original (not duplicate) attempt got no answer, so a reply riding on it may be lost."""
        return any(attempt.ambiguous for attempt in self.attempts if not attempt.duplicate)

    def wait(self, timeout: float) -> bool:
        """Block until acknowledged (and its response method executed), or ``timeout``."""
        return self.acknowledged.wait(timeout)


@dataclass
class DeliveryReport:
    """Totals over a set of update records (the simulator's, possibly merged with others)."""

    records: list[UpdateRecord]

    @property
    def updates(self) -> int:
        return len(self.records)

    @property
    def acknowledged(self) -> int:
        return sum(1 for record in self.records if record.acknowledged_at is not None)

    @property
    def never_acknowledged(self) -> list[UpdateRecord]:
        return [record for record in self.records if record.acknowledged_at is None]

    @property
    def server_errors(self) -> int:
        """Attempts answered with a 5xx (duplicates included)."""
        return sum(1 for _, attempt in self.attempts() if attempt.server_error)

    @property
    def ambiguous_failures(self) -> int:
        return sum(1 for _, attempt in self.attempts() if attempt.ambiguous)

    @property
    def duplicates_sent(self) -> int:
        return sum(record.duplicates_sent for record in self.records)

    @property
    def max_latency(self) -> float:
        """Longest single attempt that got an answer (what a request thread cost the server)."""
        return max((attempt.elapsed for _, attempt in self.attempts() if not attempt.ambiguous), default=0.0)

    def attempts(self) -> Iterator[tuple[UpdateRecord, Attempt]]:
        for record in self.records:
            for attempt in record.attempts:
                yield record, attempt

    def totals(self) -> dict[str, int]:
        return {
            "updates": self.updates,
            "acknowledged": self.acknowledged,
            "never_acknowledged": len(self.never_acknowledged),
            "server_errors": self.server_errors,
            "ambiguous_failures": self.ambiguous_failures,
            "duplicates_sent": self.duplicates_sent,
        }

    def merged(self, others: Iterable[UpdateRecord]) -> DeliveryReport:
        return DeliveryReport(self.records + list(others))


def chat_key(update: dict) -> Hashable:
    """The queue an update waits in: its chat (a private chat's id is the user's), else its sender.

    An update with neither (rare kinds) gets a queue of its own, so it is
    never held behind anything.
    """
    body = next((value for key, value in update.items() if key != "update_id"), None)
    if isinstance(body, dict):
        chat = body.get("chat") or (body.get("message") or {}).get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return chat["id"]
        sender = body.get("from") or body.get("user")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return sender["id"]
    return ("update", update.get("update_id"))


@dataclass
class _Job:
    record: UpdateRecord
    duplicate: bool
    failures: int = 0


class DeliverySimulator:
    """Telegram's webhook delivery for a stream of updates; see the module docstring."""

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
