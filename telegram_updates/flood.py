"""The per-sender flood limit: which updates it throttles, and when the sender is told.

The count comes from the intake's upsert (``users.updates_in_window``), so it
holds across workers and replicas.
"""
from __future__ import annotations

THROTTLED_KINDS = frozenset({"message", "callback_query"})


def over_limit(raw: dict, kind: str, recent: int, limit: int) -> bool:
    """Over the per-minute limit; payments are never throttled (pre-checkouts never get here)."""
    if not limit or recent <= limit or kind not in THROTTLED_KINDS:
        return False
    message = raw.get("message") or {}
    return "successful_payment" not in message and "refunded_payment" not in message


def first_over(recent: int, limit: int) -> bool:
    """The update that crossed the limit: its sender is told once, the rest go unanswered."""
    return recent == limit + 1
