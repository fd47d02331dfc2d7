"""Per-worker sender threads that deliver the outbox to Telegram.

Each job goes through three short steps: claim (a transaction), the Bot API
call (no database connection held), settle (a transaction). A sender is woken
right after a request commits new jobs, and polls every few seconds for jobs
that other workers left behind or that are due for a retry.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Callable, Mapping

from flask import Flask

from bot_outbox import jobs
from bot_outbox.client import BotApiClient, TelegramError, TelegramUnavailable
from bot_outbox.jobs import ClaimedJob
from bot_outbox.pacing import RateLimiter
from bot_outbox.runners import JobContext, Runner, with_plain_calls
from database.background import BackgroundSlots, background_session
from database.errors import describe_error
from observability.metrics import OUTBOX_JOBS

log = logging.getLogger(__name__)


class OutboxSender:
    def __init__(self, app: Flask, client: BotApiClient, slots: BackgroundSlots, runners: Mapping[str, Runner], *,
                 threads: int, poll_seconds: float, lease: timedelta,
                 chat_interval: timedelta = timedelta(0), pace: RateLimiter | None = None):
        self._app = app
        self._runners = with_plain_calls(runners)
        self._client = client
        self._slots = slots
        self._thread_count = threads
        self._poll_seconds = poll_seconds
        self._lease = lease
        self._chat_interval = chat_interval
        self._pace = pace
        self._wakeups = 0
        self._condition = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_outage_log = 0.0

    def start(self) -> None:
        for index in range(self._thread_count):
            thread = threading.Thread(target=self._run, name=f"outbox-sender-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._condition:
            self._condition.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def notify(self, count: int = 1) -> None:
        """New jobs were committed: wake that many idle senders."""
        with self._condition:
            self._wakeups += count
            self._condition.notify(count)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                worked = self._send_one()
            except Exception as error:  # the database is down: keep the thread, try again later
                self._log_outage(error)
                worked = False
            if not worked:
                self._wait_for_work()

    def _wait_for_work(self) -> None:
        with self._condition:
            if self._wakeups == 0 and not self._stopping.is_set():
                self._condition.wait(self._poll_seconds)
            self._wakeups = max(0, self._wakeups - 1)

    def _send_one(self) -> bool:
        with background_session(self._app, self._slots) as session:
            job = jobs.claim_next(session, lease=self._lease, chat_interval=self._chat_interval)
            session.commit()
        if job is None:
            return False
        if self._pace is not None:
            self._pace.wait_for_turn()
        self._deliver(job)
        return True

    def _deliver(self, job: ClaimedJob) -> None:
        run = self._runners.get(job.kind)
        try:
            if run is None:
                raise LookupError(f"no runner for outbox job kind {job.kind!r}")
            run(job, JobContext(self._client, self._app, self._slots, job))
        except TelegramError as error:
            self._settle_refusal(job, error)
        except TelegramUnavailable as error:
            reason = str(error)
            self._settle(job, lambda s: jobs.reschedule(s, job, reason), "retry")
            log.warning("outbox job %s (%s) will be retried: %s", job.id, _describe(job), reason)
        except Exception as error:
            log.exception("outbox job %s (%s) failed with a bug; will be retried", job.id, _describe(job))
            reason = f"{type(error).__name__}: {error}"
            self._settle(job, lambda s: jobs.reschedule(s, job, reason), "retry")
        else:
            self._settle(job, lambda s: jobs.mark_done(s, job.id), "done")

    def _settle_refusal(self, job: ClaimedJob, error: TelegramError) -> None:
        if error.is_transient:
            retry_after = error.retry_after if error.code == 429 else None
            self._settle(job, lambda s: jobs.reschedule(s, job, str(error), retry_after=retry_after), "retry")
            log.warning("outbox job %s (%s): %s; retrying%s", job.id, _describe(job), error,
                        f" after {retry_after}s" if retry_after else "")
        else:
            self._settle(job, lambda s: jobs.mark_failed(s, job.id, str(error)), "failed")
            log.warning("outbox job %s (%s) refused by Telegram, not retried: %s", job.id, _describe(job), error)

    def _settle(self, job: ClaimedJob, change: Callable, outcome: str) -> None:
        """Record a job's outcome, riding out a short database outage.

        The call has happened; if the outcome is not recorded, the job is sent
        again when its lease expires (and blocks its chat until then). So keep
        trying for a while, with backoff, before giving that up.
        """
        OUTBOX_JOBS.labels(job.kind, outcome).inc()
        give_up_at = time.monotonic() + self._lease.total_seconds() / 2
        delay = 0.2
        while True:
            try:
                with background_session(self._app, self._slots) as session:
                    change(session)
                    session.commit()
                return
            except Exception as error:
                if time.monotonic() + delay >= give_up_at or self._stopping.is_set():
                    log.error("outbox job %s (%s): outcome not recorded, it will be sent again after its lease: %s",
                              job.id, _describe(job), describe_error(error))
                    return
                self._log_outage(error)
            self._stopping.wait(delay)
            delay = min(delay * 2, 5.0)

    def _log_outage(self, error: BaseException) -> None:
        # One line per poll interval is enough when the database is down.
        now = time.monotonic()
        if now - self._last_outage_log >= self._poll_seconds:
            self._last_outage_log = now
            log.warning("outbox sender cannot reach the database, retrying: %s", describe_error(error))


def _describe(job: ClaimedJob) -> str:
    method = job.payload.get("method") if job.kind == jobs.CALL else None
    return f"{job.kind}:{method}" if method else job.kind
