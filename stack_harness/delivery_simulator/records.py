"""What became of each update: its attempts, its record and the totals over many (the report)."""
from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

TIMEOUT = "timeout"
CONNECTION_ERROR = "connection-error"


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
