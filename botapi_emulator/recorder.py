"""The record of every call the bot made, and waiting on it without sleeping.

Why: tests must not ``sleep(0.5)`` and hope the bot has acted.  Each call is
appended under a ``threading.Condition``; ``wait_for_call`` blocks until a
matching call exists (or the deadline passes) and then returns at once.
Calls are numbered from 0, so ``since=recorder.next_index`` means "from now on".
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

CallPredicate = Callable[["Call"], bool]


@dataclass(frozen=True)
class Call:
    """One bot call: ``params`` are typed and decoded (objects as dicts)."""

    index: int
    method: str
    params: dict[str, Any]
    time: float
    via_webhook_response: bool
    ok: bool
    result_or_error: Any  # the result, or {"error_code": ..., "description": ...}
    http_status: int = 200

    @property
    def result(self) -> Any:
        return self.result_or_error if self.ok else None

    @property
    def error_description(self) -> str | None:
        return None if self.ok else self.result_or_error.get("description")

    def summary(self) -> str:
        outcome = "ok" if self.ok else self.result_or_error.get("description")
        source = " (webhook response)" if self.via_webhook_response else ""
        return f"#{self.index} {self.method}{source} {outcome} params={self.params}"

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "method": self.method,
            "params": {name: _jsonable(value) for name, value in self.params.items()},
            "time": self.time,
            "via_webhook_response": self.via_webhook_response,
            "ok": self.ok,
            "result_or_error": self.result_or_error,
            "http_status": self.http_status,
        }


def _jsonable(value: Any) -> Any:
    if hasattr(value, "filename"):  # an uploaded file
        return {"file": value.filename, "size": len(value.data)}
    return value


class CallRecorder:
    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._changed = threading.Condition()

    @property
    def next_index(self) -> int:
        """The index the next call will get: pass it as ``since`` to ignore earlier calls."""
        with self._changed:
            return len(self._calls)

    def record(self, method: str, params: dict, via_webhook_response: bool, ok: bool,
               result_or_error: Any, http_status: int) -> Call:
        with self._changed:
            call = Call(
                len(self._calls), method, params, time.time(), via_webhook_response, ok, result_or_error, http_status
            )
            self._calls.append(call)
            self._changed.notify_all()
            return call

    def calls(self, method: str | None = None, since: int = 0) -> list[Call]:
        with self._changed:
            return [call for call in self._calls[since:] if _method_matches(call, method)]

    def wait_for_calls(self, method: str | None, count: int, predicate: CallPredicate | None = None,
                       timeout: float = 10.0, since: int = 0) -> list[Call]:
        """Block until ``count`` matching calls (index >= since) exist; return the first ``count``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [call for call in self._calls[since:] if _matches(call, method, predicate)]
                if len(matching) >= count:
                    return matching[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        self._timeout_message(method, predicate is not None, count, len(matching), timeout, since)
                    )
                self._changed.wait(remaining)

    def wait_for_call(self, method: str | None, predicate: CallPredicate | None = None,
                      timeout: float = 10.0, since: int = 0) -> Call:
        return self.wait_for_calls(method, 1, predicate, timeout, since)[0]

    def _timeout_message(self, method: str | None, has_predicate: bool, wanted: int, found: int,
                         timeout: float, since: int) -> str:
        seen = self._calls[since:]
        listing = "\n  ".join(call.summary() for call in seen[-30:]) or "(no calls)"
        condition = " matching the predicate" if has_predicate else ""
        return (
            f"waited {timeout:g}s for {wanted} call(s) to {method or 'any method'}{condition} "
            f"(index >= {since}), found {found}; calls seen (last 30):\n  {listing}"
        )


def _method_matches(call: Call, method: str | None) -> bool:
    return method is None or call.method.lower() == method.lower()


def _matches(call: Call, method: str | None, predicate: CallPredicate | None) -> bool:
    return _method_matches(call, method) and (predicate is None or predicate(call))
