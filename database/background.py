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

    def __enter__(self):
        self._semaphore.acquire()
        return self

    def __exit__(self, *exc_info):
        self._semaphore.release()
        return False


@contextmanager
def background_session(app: Flask, slots: BackgroundSlots) -> Iterator[Session]:
    """One short unit of background database work. The caller commits."""
    with slots, app.app_context():
        yield db.session
