"""Leases of running outbox jobs: short, renewed while a job runs, released when its worker dies.

A sender claims a job for ``OUTBOX_LEASE_SECONDS`` (10 s by default). While
the job runs, its worker's heartbeat renews the leases of all the jobs the
worker is running, every ``OUTBOX_HEARTBEAT_SECONDS``, in one fenced
statement, for at most ``Settings.outbox_runner_seconds`` (the longest a job
may take). So:

- a live sender keeps its job however many calls the job makes;
- a job whose worker died is released by the gunicorn master as soon as it
  reaps that worker (``child_exit`` calls :func:`release_dead_worker`), and
  another worker claims it at its next poll, within seconds;
- a job whose whole replica died waits out one short lease;
- a sender that lost its job (its lease lapsed while the database was out
  of reach, or it ran past its budget, and another sender claimed the job)
  finds out at its next call or write: :class:`LeaseLost`, and it stops.

Correct first: ownership is the claim token (``jobs._held_by``), checked by
every write, so two senders never both write a job's progress or outcome.
Fast second: the master's release and the heartbeat decide how soon a job
moves on. Between a sender losing its lease and learning so, both may call
Telegram once for the job; never both record it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

from flask import Flask

from bot_outbox import jobs
from bot_outbox.client import BotApiClient
from bot_outbox.jobs import ClaimedJob
from database.background import BackgroundSlots, background_session
from database.errors import describe_error
from models.base import db
from settings import settings_of

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """This sender no longer holds the job: it must stop, and leave the job to the sender that does."""


def owner_id(replica: str, master_pid: int, worker_pid: int) -> str:
    """Who holds a claim. A pid alone is not unique across replicas, nor across gunicorn masters on one host."""
    return f"{replica}:{master_pid}:{worker_pid}"


class Lease:
    """One running job's claim, as its sender knows it.

    ``expires_at`` is a lower bound on the lease's end in the database: the
    monotonic time taken before the claim (or renewal) was sent, plus the
    lease. The heartbeat moves it on; a failed fence marks the lease lost.
    Once the sender is ``settling`` the job, a renewal that finds it gone
    proves nothing (the outcome may just have been recorded): the settle's
    own fence tells.
    """

    def __init__(self, job: ClaimedJob, duration: float, claimed_at: float):
        self.job = job
        self.claimed_at = claimed_at
        self.expires_at = claimed_at + duration
        self.lost = False
        self.settling = False
        self.past_budget = False

    def renewed(self, sent_at: float, duration: float) -> None:
        self.expires_at = max(self.expires_at, sent_at + duration)

    def lose(self) -> None:
        self.lost = True

    def ensure_held(self) -> None:
        """Raise LeaseLost unless the job is still known to be ours: before any call to Telegram."""
        if self.lost:
            raise LeaseLost(f"outbox job {self.job.id} was claimed by another sender")
        if time.monotonic() >= self.expires_at:
            raise LeaseLost(f"the lease of outbox job {self.job.id} ran out before it could be renewed")


class FencedClient:
    """The Bot API client as a runner sees it: no call is made once the job's lease is lost."""

    def __init__(self, client: BotApiClient, lease: Lease):
        self._client = client
        self._lease = lease

    def call(self, method: str, params: dict | None = None, *, read_timeout: float | None = None) -> Any:
        self._lease.ensure_held()
        return self._client.call(method, params, read_timeout=read_timeout)

    def redact(self, text: str) -> str:
        return self._client.redact(text)


class LeaseKeeper:
    """One worker's running jobs, and the heartbeat thread that renews their leases."""

    def __init__(self, app: Flask, slots: BackgroundSlots, *, lease: timedelta, heartbeat: float,
                 max_hold: float, replica: str):
        self._app = app
        self._slots = slots
        self._lease = lease
        self._heartbeat = heartbeat
        self._max_hold = max_hold
        self._replica = replica
        self._held: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_outage_log = 0.0
        self.owner: str | None = None

    def start(self) -> None:
        """In the worker process: its pids name the owner the master releases when the worker dies."""
        self.owner = owner_id(self._replica, os.getppid(), os.getpid())
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-lease-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def hold(self, job: ClaimedJob, claimed_at: float) -> Lease:
        lease = Lease(job, self._lease.total_seconds(), claimed_at)
        with self._lock:
            self._held[job.id] = lease
        return lease

    def drop(self, lease: Lease) -> None:
        with self._lock:
            if self._held.get(lease.job.id) is lease:
                del self._held[lease.job.id]

    def worth_trying(self, lease: Lease) -> bool:
        """Whether a write under this lease may still apply: not lost, and not long past its budget."""
        return not lease.lost and time.monotonic() < lease.claimed_at + self._max_hold + self._lease.total_seconds()

    def renew_now(self) -> None:
        """One heartbeat: extend every running job's lease, learn which were lost."""
        due = self._due()
        if not due:
            return
        sent_at = time.monotonic()
        try:
            with background_session(self._app, self._slots) as session:
                renewed = jobs.renew(session, [lease.job for lease in due], self._lease)
                session.commit()
        except Exception as error:  # the database is out of reach: the leases run on, the fence stays exact
            self._log_outage(error)
            return
        for lease in due:
            if lease.job.id in renewed:
                lease.renewed(sent_at, self._lease.total_seconds())
            elif not lease.settling and self._running(lease) and not lease.lost:
                lease.lose()
                log.warning("outbox job %s: its lease was taken over by another sender; this one stops",
                            lease.job.id)

    def _running(self, lease: Lease) -> bool:
        """Still held: not dropped by its sender since the heartbeat took its snapshot."""
        with self._lock:
            return self._held.get(lease.job.id) is lease

    def _due(self) -> list[Lease]:
        """Running leases within their budget; a job past it is left to lapse, so a stuck runner frees it."""
        now = time.monotonic()
        with self._lock:
            running = [lease for lease in self._held.values() if not lease.lost]
        due = []
        for lease in running:
            if now - lease.claimed_at < self._max_hold:
                due.append(lease)
            elif not lease.past_budget:
                lease.past_budget = True
                log.error("outbox job %s (%s) has run for %.0fs, longer than any job may (%.0fs): "
                          "its lease is no longer renewed", lease.job.id, lease.job.kind, now - lease.claimed_at,
                          self._max_hold)
        return due

    def _run(self) -> None:
        while not self._stopping.wait(self._heartbeat):
            self.renew_now()

    def _log_outage(self, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_outage_log >= self._lease.total_seconds():
            self._last_outage_log = now
            log.warning("outbox lease heartbeat cannot reach the database: %s", describe_error(error))


def release_dead_worker(app: Flask, worker_pid: int) -> int:
    """In the gunicorn master, right after it reaped ``worker_pid``: free that worker's jobs now.

    The master has waited for the process, so it can write nothing more; its
    jobs need not wait out their leases. The master keeps no connection
    afterwards (it is outside the connection budget). A failure is one log
    line: the leases then lapse on their own.
    """
    owner = owner_id(settings_of(app).replica_id, os.getpid(), worker_pid)
    try:
        with background_session(app, app.extensions["background_slots"]) as session:
            released = jobs.release_owner(session, owner)
            session.commit()
    except Exception as error:
        log.warning("could not release the outbox jobs of dead worker %s; their leases will lapse: %s",
                    worker_pid, describe_error(error))
        return 0
    finally:
        with app.app_context():
            db.engine.dispose()
    if released:
        log.info("released %d outbox job(s) of dead worker %s", released, worker_pid)
    return released
