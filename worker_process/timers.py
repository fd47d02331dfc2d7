"""In-process periodic jobs (ledger pruning, expiry sweep, reconciliation).

They run in every worker of every replica; each job is written so that
running it concurrently does each action once (row claims, transaction-level
locks), so no platform cron is needed.
"""
from __future__ import annotations

import logging
import random
import threading
from typing import Callable

from flask import Flask

from database.background import BackgroundSlots

log = logging.getLogger(__name__)

Job = Callable[[Flask, BackgroundSlots], None]


class PeriodicTask:
    def __init__(self, app: Flask, slots: BackgroundSlots, name: str, job: Job, every_seconds: float):
        self._app = app
        self._slots = slots
        self._name = name
        self._job = job
        self._every = every_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"timer-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        # A random first delay spreads workers that started together.
        delay = random.uniform(0, self._every)
        while not self._stopping.wait(delay):
            try:
                self._job(self._app, self._slots)
            except Exception:
                log.exception("periodic job %s failed; next run in %ss", self._name, self._every)
            delay = self._every
