"""How an outbox job is performed: a runner per job kind, and what a runner may use.

Plain Bot API calls (kind ``call``) are run here. Multi-step jobs belong to
the domain (an invite: create the link, save it, send it); their runners are
registered explicitly in one place (``membership.job_runners``) and handed to
the sender by the app factory, so every process that sends has every runner,
whatever it happened to import.

The registry maps a job kind to a runner: a plain function ``run(job,
context)``, or a :class:`JobRunner` when the kind also needs to know that
its job failed for good (``on_give_up``).

A runner holds its job under a fenced lease (``bot_outbox.leases``). Its
calls through ``context.client`` and its writes through
``context.transaction()`` and ``context.save_state()`` happen only while it
still holds the job; otherwise they raise ``LeaseLost``, which a runner lets
through: the sender then stops without recording anything, and the sender
that holds the job now finishes it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, NoReturn, Protocol, Union

from flask import Flask
from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.jobs import CALL, ClaimedJob
from bot_outbox.leases import Lease, LeaseLost
from database.background import BackgroundSlots, background_session
from settings import Settings, settings_of


class TelegramCalls(Protocol):
    """What a runner calls Telegram with: ``bot_outbox.client.BotApiClient``, fenced by the job's lease."""

    def call(self, method: str, params: dict | None = None, *, read_timeout: float | None = None) -> Any: ...


@dataclass
class JobContext:
    """What a runner may use: Telegram, and short fenced transactions of its own.

    A runner never holds a database connection while it calls Telegram:
    each ``transaction()`` is opened, committed and closed between calls.
    """

    client: TelegramCalls
    app: Flask
    slots: BackgroundSlots
    job: ClaimedJob
    lease: Lease | None = None

    @property
    def settings(self) -> Settings:
        return settings_of(self.app)

    def save_state(self, state: dict, session: Session | None = None) -> None:
        """Commit a multi-step job's progress, so a retry resumes where it stopped.

        Inside ``with context.transaction() as session``, pass that session:
        the progress then commits together with the domain's own writes (an
        invite's link with the invite row), or neither does.
        """
        if session is None:
            with self.transaction() as own:
                self.save_state(state, own)
        elif not jobs.save_state(session, self.job, state):
            self._lost("its progress was not saved")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A fenced transaction: it starts by locking the job's row under this claim.

        So nobody can take the job over until it commits, and it commits only
        while this sender holds the job; if another sender holds it, LeaseLost
        is raised before anything is written.
        """
        with background_session(self.app, self.slots) as session:
            if not jobs.lock_if_held(session, self.job):
                session.rollback()
                self._lost("nothing was written")
            yield session
            commit_and_wake(self.app, session)

    def _lost(self, consequence: str) -> NoReturn:
        if self.lease is not None:
            self.lease.lose()
        raise LeaseLost(f"outbox job {self.job.id} is held by another sender now; {consequence}")


# A runner performs one job against Telegram; raising TelegramError or
# TelegramUnavailable lets the sender decide between retrying and giving up.
Runner = Callable[[ClaimedJob, JobContext], None]
# Told that a job failed for good: (session, job, reason). See JobRunner.
GiveUpHandler = Callable[[Session, ClaimedJob, str], None]


@dataclass(frozen=True)
class JobRunner:
    """A job kind's runner, and optionally what to do when one of its jobs fails for good.

    ``on_give_up(session, job, reason)`` is called by the sender when it
    fails a job for good: Telegram refused it in a way not worth retrying,
    or it kept failing for ``jobs.GIVE_UP_AFTER``. It runs in the same fenced
    transaction that marks the job failed, so both commit or neither does
    (and only the sender that holds the job calls it, once). Like a domain
    function it takes the session and leaves the commit to the sender; it
    may queue jobs (sent after the commit), and read the settings with
    ``settings.current_settings()``. If it raises, the job is marked failed
    without it and the error is logged: a broken handler never keeps a job
    coming back. A runner that handles a refusal itself (and returns) is
    done, not failed, and its handler is not called.
    """

    run: Runner
    on_give_up: GiveUpHandler | None = None


# What the registry may hold for a kind: a plain runner or a JobRunner.
RunnerEntry = Union[Runner, JobRunner]


def as_job_runner(entry: RunnerEntry) -> JobRunner:
    return entry if isinstance(entry, JobRunner) else JobRunner(entry)


def commit_and_wake(app: Flask, session: Session) -> None:
    """Commit, then wake as many senders as the transaction queued jobs."""
    session.commit()
    queued = jobs.take_enqueued_count(session)
    if queued:
        app.extensions["outbox_sender"].notify(queued)


def run_call(job: ClaimedJob, context: JobContext) -> None:
    context.client.call(job.payload["method"], job.payload.get("params") or {})


def with_plain_calls(runners: Mapping[str, RunnerEntry]) -> dict[str, JobRunner]:
    """The registry a sender runs with: the domain's runners plus plain Bot API calls."""
    return {kind: as_job_runner(entry) for kind, entry in {CALL: run_call, **runners}.items()}


@contextmanager
def unit_of_work(app: Flask, slots: BackgroundSlots) -> Iterator[Session]:
    """One short background transaction, committed when the block ends; queued jobs are sent at once."""
    with background_session(app, slots) as session:
        yield session
        commit_and_wake(app, session)
