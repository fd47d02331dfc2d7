"""Per-worker sender threads that deliver the outbox to Telegram.

Each job goes through three short steps: claim (a transaction), the runner's
Bot API calls (no database connection held), settle (a transaction). The
claim is a fenced lease that the worker's heartbeat renews while the job
runs (``bot_outbox.leases``): a sender that lost its job stops and records
nothing. A sender is woken right after a request commits new jobs, and polls
every few seconds for jobs that other workers left behind or that are due
for a retry.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Callable, Mapping

from flask import Flask
from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.client import BotApiClient, TelegramError, TelegramUnavailable
from bot_outbox.jobs import ClaimedJob
from bot_outbox.leases import FencedClient, Lease, LeaseKeeper, LeaseLost
from bot_outbox.pacing import SharedPace, Turn
from bot_outbox.runners import JobContext, JobRunner, RunnerEntry, commit_and_wake, with_plain_calls
from database.background import BackgroundSlots, background_session
from database.errors import describe_error, is_transient
from observability.metrics import OUTBOX_JOBS

log = logging.getLogger(__name__)

# A change of a job's row under its claim: whether the claim still held it.
Change = Callable[[Session], bool]


class OutboxSender:
    def __init__(self, app: Flask, client: BotApiClient, slots: BackgroundSlots, runners: Mapping[str, RunnerEntry],
                 *, threads: int, poll_seconds: float, lease: timedelta, heartbeat: float | None = None,
                 max_hold: float | None = None, replica: str = "",
                 chat_interval: timedelta = timedelta(0), pace: SharedPace | None = None):
        self._app = app
        self._runners = with_plain_calls(runners)
        self._client = client
        self._slots = slots
        self._thread_count = threads
        self._poll_seconds = poll_seconds
        self._lease = lease
        self._keeper = LeaseKeeper(
            app, slots, lease=lease, heartbeat=heartbeat or lease.total_seconds() / 5,
            max_hold=max_hold if max_hold is not None else 6 * lease.total_seconds(), replica=replica)
        self._chat_interval = chat_interval
        self._pace = pace
        self._wakeups = 0
        self._condition = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_outage_log = 0.0

    def start(self) -> None:
        self._keeper.start()
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
        # Last: a sender still inside a job keeps its lease renewed until it is done or gone.
        self._keeper.stop(max(0.0, deadline - time.monotonic()))

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
        claimed_at = time.monotonic()  # before the claim is sent: the lease ends no earlier than this plus its length
        with background_session(self._app, self._slots) as session:
            job = jobs.claim_next(session, lease=self._lease, chat_interval=self._chat_interval,
                                  owner=self._keeper.owner)
            turn = self._take_turn(session) if job is not None else None
            session.commit()
        if job is None:
            return False
        lease = self._keeper.hold(job, claimed_at)
        try:
            if turn is not None:
                self._pace.wait_for(turn)  # no connection held: the claim has been committed
            self._deliver(job, lease)
        finally:
            self._keeper.drop(lease)
        return True

    def _take_turn(self, session: Session) -> Turn | None:
        """Telegram's pace, shared by every replica: the turn rides on the claim's transaction."""
        return self._pace.reserve(session) if self._pace is not None else None

    def _deliver(self, job: ClaimedJob, lease: Lease) -> None:
        runner = self._runners.get(job.kind)
        try:
            if runner is None:
                raise LookupError(f"no runner for outbox job kind {job.kind!r}")
            lease.ensure_held()
            runner.run(job, JobContext(FencedClient(self._client, lease), self._app, self._slots, job, lease))
        except LeaseLost as lost:
            OUTBOX_JOBS.labels(job.kind, "lease_lost").inc()
            log.warning("outbox job %s (%s) stopped: %s; the sender that holds it now will finish it",
                        job.id, _describe(job), lost)
        except TelegramError as error:
            self._settle_refusal(job, lease, runner, error)
        except TelegramUnavailable as error:
            log.warning("outbox job %s (%s) will be retried: %s", job.id, _describe(job), error)
            self._retry(job, lease, runner, str(error))
        except Exception as error:
            log.exception("outbox job %s (%s) failed with a bug; will be retried", job.id, _describe(job))
            self._retry(job, lease, runner, f"{type(error).__name__}: {error}")
        else:
            self._settle(job, lease, lambda s: jobs.mark_done(s, job), "done")

    def _settle_refusal(self, job: ClaimedJob, lease: Lease, runner: JobRunner, error: TelegramError) -> None:
        if error.is_transient:
            retry_after = error.retry_after if error.code == 429 else None
            log.warning("outbox job %s (%s): %s; retrying%s", job.id, _describe(job), error,
                        f" after {retry_after}s" if retry_after else "")
            self._retry(job, lease, runner, str(error), retry_after=retry_after)
        else:
            log.warning("outbox job %s (%s) refused by Telegram, not retried: %s", job.id, _describe(job), error)
            self._give_up(job, lease, runner, str(error))

    def _retry(self, job: ClaimedJob, lease: Lease, runner: JobRunner | None, reason: str, *,
               retry_after: float | None = None) -> None:
        if jobs.past_retrying(job):
            log.warning("outbox job %s (%s) has failed for a day: giving up", job.id, _describe(job))
            self._give_up(job, lease, runner, f"gave up after {job.attempts} attempts: {reason}")
        else:
            self._settle(job, lease, lambda s: jobs.reschedule(s, job, reason, retry_after=retry_after), "retry")

    def _give_up(self, job: ClaimedJob, lease: Lease, runner: JobRunner | None, reason: str) -> None:
        """Fail the job for good and, in the same fenced transaction, tell its kind's give-up handler."""
        handler = runner.on_give_up if runner is not None else None
        if handler is None:
            self._settle(job, lease, lambda s: jobs.mark_failed(s, job, reason), "failed")
            return

        def fail_and_tell(session: Session) -> bool:
            if not jobs.mark_failed(session, job, reason):
                return False
            handler(session, job, reason)
            return True

        try:
            self._settle(job, lease, fail_and_tell, "failed", bugs_raise=True)
        except Exception:
            log.exception("outbox job %s (%s): its give-up handler failed; marking it failed without it",
                          job.id, _describe(job))
            self._settle(job, lease, lambda s: jobs.mark_failed(s, job, reason), "failed")

    def _settle(self, job: ClaimedJob, lease: Lease, change: Change, outcome: str, *, bugs_raise: bool = False) -> None:
        """Record a job's outcome under its claim, riding out a short database outage.

        The call has happened; if the outcome is not recorded, the job runs
        again once its lease is gone (and blocks its chat until then). So keep
        trying, with backoff, while the job may still be this sender's: until
        the fence says another sender holds it, or its budget is long spent.
        ``bugs_raise``: an error that is not an outage is raised, not retried.
        """
        lease.settling = True
        delay = 0.2
        while True:
            try:
                with background_session(self._app, self._slots) as session:
                    applied = change(session)
                    if applied:
                        commit_and_wake(self._app, session)
                break
            except Exception as error:
                if bugs_raise and not is_transient(error):
                    raise
                if not self._keeper.worth_trying(lease) or self._stopping.is_set():
                    log.error("outbox job %s (%s): outcome not recorded, it will run again after its lease: %s",
                              job.id, _describe(job), describe_error(error))
                    return
                self._log_outage(error)
            self._stopping.wait(delay)
            delay = min(delay * 2, 5.0)
        if applied:
            OUTBOX_JOBS.labels(job.kind, outcome).inc()
        else:
            lease.lose()
            OUTBOX_JOBS.labels(job.kind, "lease_lost").inc()
            log.warning("outbox job %s (%s) is held by another sender now: its outcome (%s) is left to that one",
                        job.id, _describe(job), outcome)

    def _log_outage(self, error: BaseException) -> None:
        # One line per poll interval is enough when the database is down.
        now = time.monotonic()
        if now - self._last_outage_log >= self._poll_seconds:
            self._last_outage_log = now
            log.warning("outbox sender cannot reach the database, retrying: %s", describe_error(error))


def _describe(job: ClaimedJob) -> str:
    method = job.payload.get("method") if job.kind == jobs.CALL else None
    return f"{job.kind}:{method}" if method else job.kind
