"""How background threads touch the database: own app context, bounded, session removed.

Request threads get their session from the request's app context; a thread of
our own has none, so each unit of background work pushes a fresh app context
(never nested inside another) and the context's teardown removes the session,
whatever happened.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from flask import Flask
from sqlalchemy.orm import Session

from models.base import db


class BackgroundSlots:
    """Caps how many pooled connections a worker's background threads hold at once.

    The pool has ``threads + BACKGROUND_CONNECTIONS`` connections; background
    work takes a slot before it touches the database, so request threads never
    wait for a connection because of it.
    """

    def __init__(self, slots: int):
        self._semaphore = threading.BoundedSemaphore(slots)

    @contextmanager
    def held(self, wait: float | None = None) -> Iterator[None]:
        """Hold a slot; with ``wait``, give up after that many seconds (SlotsBusy)."""
        if not self._semaphore.acquire(timeout=wait):
            raise SlotsBusy(f"no background connection slot free within {wait}s")
        try:
            yield
        finally:
            self._semaphore.release()


class SlotsBusy(RuntimeError):
    """Every background slot stayed taken for as long as the caller could wait."""


@contextmanager
def background_session(app: Flask, slots: BackgroundSlots, wait: float | None = None) -> Iterator[Session]:
    """One short unit of background database work. The caller commits.

    ``wait`` bounds the wait for a slot, for callers that run on a request
    thread and must not hold it up (they get SlotsBusy instead).
    """
    with slots.held(wait), app.app_context():
        yield db.session
