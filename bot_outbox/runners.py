"""How an outbox job is performed: a runner per job kind, and what a runner may use.

Plain Bot API calls (kind ``call``) are run here. Multi-step jobs belong to
the domain (an invite: create the link, save it, send it); their runners are
registered explicitly in one place (``membership.job_runners``) and handed to
the sender by the app factory, so every process that sends has every runner,
whatever it happened to import.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

from flask import Flask
from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.client import BotApiClient
from bot_outbox.jobs import CALL, ClaimedJob
from database.background import BackgroundSlots, background_session
from settings import Settings, settings_of


@dataclass
class JobContext:
    """What a runner may use: Telegram, and short transactions of its own.

    A runner never holds a database connection while it calls Telegram:
    each ``transaction()`` is opened, committed and closed between calls.
    """

    client: BotApiClient
    app: Flask
    slots: BackgroundSlots
    job: ClaimedJob

    @property
    def settings(self) -> Settings:
        return settings_of(self.app)

    def save_state(self, state: dict) -> None:
        """Commit a multi-step job's progress, so a retry resumes where it stopped."""
        with self.transaction() as session:
            jobs.save_state(session, self.job.id, state)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with background_session(self.app, self.slots) as session:
            yield session
            commit_and_wake(self.app, session)


# A runner performs one job against Telegram; raising TelegramError or
# TelegramUnavailable lets the sender decide between retrying and giving up.
Runner = Callable[[ClaimedJob, JobContext], None]


def commit_and_wake(app: Flask, session: Session) -> None:
    """Commit, then wake as many senders as the transaction queued jobs."""
    session.commit()
    queued = jobs.take_enqueued_count(session)
    if queued:
        app.extensions["outbox_sender"].notify(queued)


def run_call(job: ClaimedJob, context: JobContext) -> None:
    context.client.call(job.payload["method"], job.payload.get("params") or {})


def with_plain_calls(runners: Mapping[str, Runner]) -> dict[str, Runner]:
    """The registry a sender runs with: the domain's runners plus plain Bot API calls."""
    return {CALL: run_call, **runners}


@contextmanager
def unit_of_work(app: Flask, slots: BackgroundSlots) -> Iterator[Session]:
    """One short background transaction, committed when the block ends; queued jobs are sent at once."""
    with background_session(app, slots) as session:
        yield session
        commit_and_wake(app, session)
