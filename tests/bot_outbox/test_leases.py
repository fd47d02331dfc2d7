"""Fenced leases over real PostgreSQL: a claim's writes apply only while it still holds its job.

No sender threads run here: the test plays two senders, one whose lease
expired and one that claimed the job after it.
"""
from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.client import BotApiClient, Timeouts
from bot_outbox.jobs import ClaimedJob
from bot_outbox.leases import FencedClient, Lease, LeaseKeeper, LeaseLost, owner_id, release_dead_worker
from bot_outbox.runners import JobContext
from models.base import db, utcnow
from models.invite import Invite
from models.outbox import DONE, PENDING, OutboxJob
from settings import settings_of
from stack_harness.bot_env import BOT_TOKEN
from tests.bot_outbox.steps import SHORT, claim, queue, row, write


def context_for(app, job: ClaimedJob, lease: Lease | None = None) -> JobContext:
    return JobContext(app.extensions["telegram_client"], app, app.extensions["background_slots"], job, lease)


def test_each_claim_gets_a_fresh_token_and_names_its_owner(quiet_app):
    job_id = queue(quiet_app)
    first = claim(quiet_app, owner="replica:1:2")
    second = claim(quiet_app, after=timedelta(seconds=2), owner="replica:1:3")
    assert first.id == second.id == job_id
    assert first.claim_token and second.claim_token and first.claim_token != second.claim_token
    assert (first.attempts, second.attempts) == (1, 2)
    held = row(quiet_app, job_id)
    assert (held.claim_token, held.locked_by) == (second.claim_token, "replica:1:3")


def test_a_sender_whose_lease_expired_and_was_claimed_again_changes_nothing(quiet_app):
    job_id = queue(quiet_app)
    first = claim(quiet_app)
    second = claim(quiet_app, after=timedelta(seconds=2))  # the first lease has expired: taken over

    assert write(quiet_app, lambda s: jobs.save_state(s, first, {"link": "first"})) is False
    assert write(quiet_app, lambda s: jobs.mark_done(s, first)) is False
    assert write(quiet_app, lambda s: jobs.mark_failed(s, first, "refused")) is False
    assert write(quiet_app, lambda s: jobs.reschedule(s, first, "timeout")) is False
    with quiet_app.app_context():
        assert jobs.lock_if_held(db.session, first) is False
        db.session.rollback()
    untouched = row(quiet_app, job_id)
    assert (untouched.status, untouched.state, untouched.last_error) == (PENDING, None, None)
    assert untouched.claim_token == second.claim_token and untouched.locked_until is not None

    assert write(quiet_app, lambda s: jobs.save_state(s, second, {"link": "second"})) is True
    assert write(quiet_app, lambda s: jobs.mark_done(s, second)) is True
    done = row(quiet_app, job_id)
    assert (done.status, done.state) == (DONE, {"link": "second"})
    # Settled: no claim holds a finished job any more, not even its last one.
    assert write(quiet_app, lambda s: jobs.save_state(s, second, {"link": "late"})) is False


def test_an_expired_lease_nobody_claimed_is_still_its_senders(quiet_app):
    """The fence is the token, not the clock: a late write is safe while no one else holds the job."""
    job_id = queue(quiet_app)
    first = claim(quiet_app)
    with quiet_app.app_context():
        db.session.execute(OutboxJob.__table__.update().where(OutboxJob.id == job_id)
                           .values(locked_until=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    assert write(quiet_app, lambda s: jobs.mark_done(s, first)) is True


def test_a_rescheduled_job_is_let_go(quiet_app):
    job_id = queue(quiet_app)
    first = claim(quiet_app)
    assert write(quiet_app, lambda s: jobs.reschedule(s, first, "timeout", retry_after=0)) is True
    released = row(quiet_app, job_id)
    assert (released.claim_token, released.locked_by, released.locked_until) == (None, None, None)
    assert write(quiet_app, lambda s: jobs.save_state(s, first, {"late": True})) is False


def test_a_claim_by_a_worker_of_the_previous_release_fences_out_the_token_holder(quiet_app):
    """During a rolling deploy an old worker claims without a token; its claim still counts an attempt."""
    job_id = queue(quiet_app)
    first = claim(quiet_app)
    with quiet_app.app_context():
        db.session.execute(OutboxJob.__table__.update().where(OutboxJob.id == job_id)
                           .values(attempts=OutboxJob.attempts + 1, locked_until=utcnow() + SHORT))
        db.session.commit()
    assert write(quiet_app, lambda s: jobs.mark_done(s, first)) is False


def test_the_runners_transaction_commits_its_writes_with_the_jobs_progress_or_not_at_all(quiet_app):
    job_id = queue(quiet_app)
    first = claim(quiet_app)
    context = context_for(quiet_app, first)
    with context.transaction() as session:
        invite = Invite(user_id=5, reason="test", link="https://t.me/+first")
        session.add(invite)
        context.save_state({"link": invite.link}, session=session)
        # While the transaction holds the row, no other sender can take the job, expired lease or not.
        with Session(db.engine) as other:
            assert jobs.claim_next(other, now=utcnow() + timedelta(minutes=5)) is None
            other.rollback()
    assert row(quiet_app, job_id).state == {"link": "https://t.me/+first"}

    claim(quiet_app, after=timedelta(seconds=2))  # taken over
    lease = Lease(first, 60.0, time.monotonic())
    context = context_for(quiet_app, first, lease)
    with pytest.raises(LeaseLost):
        with context.transaction() as session:
            session.add(Invite(user_id=6, reason="test", link="https://t.me/+untracked"))
    with pytest.raises(LeaseLost):
        context.save_state({"link": "https://t.me/+untracked"})
    assert lease.lost
    with quiet_app.app_context():
        links = db.session.scalars(select(Invite.link)).all()
    assert links == ["https://t.me/+first"]
    assert row(quiet_app, job_id).state == {"link": "https://t.me/+first"}


def test_the_heartbeat_renews_held_leases_and_finds_the_lost_ones(quiet_app):
    queue(quiet_app, chat_id=1), queue(quiet_app, chat_id=2)
    keeper = LeaseKeeper(quiet_app, quiet_app.extensions["background_slots"], lease=timedelta(seconds=30),
                         heartbeat=1.0, max_hold=60.0, replica="test")
    started = time.monotonic()
    stolen, kept = claim(quiet_app, lease=SHORT), claim(quiet_app, lease=SHORT)
    kept_lease, stolen_lease = keeper.hold(kept, started), keeper.hold(stolen, started)
    thief = claim(quiet_app, after=timedelta(seconds=2), lease=SHORT)  # the oldest expired job
    assert thief.id == stolen.id
    before = row(quiet_app, stolen.id).locked_until

    keeper.renew_now()
    assert row(quiet_app, kept.id).locked_until > utcnow() + timedelta(seconds=25)
    assert kept_lease.expires_at > started + 25 and not kept_lease.lost
    assert stolen_lease.lost
    assert row(quiet_app, stolen.id).locked_until == before  # the thief's lease is untouched
    with pytest.raises(LeaseLost, match="claimed by another sender"):
        stolen_lease.ensure_held()
    kept_lease.ensure_held()


def test_a_job_past_its_budget_is_no_longer_renewed(quiet_app):
    queue(quiet_app)
    keeper = LeaseKeeper(quiet_app, quiet_app.extensions["background_slots"], lease=timedelta(seconds=30),
                         heartbeat=1.0, max_hold=0.0, replica="test")
    job = claim(quiet_app, lease=SHORT)
    lease = keeper.hold(job, time.monotonic())
    before = row(quiet_app, job.id).locked_until
    keeper.renew_now()
    assert row(quiet_app, job.id).locked_until == before and lease.past_budget


def test_a_lease_that_ran_out_locally_stops_calls_to_telegram(quiet_app, emulator):
    queue(quiet_app)
    job = claim(quiet_app, lease=SHORT)
    client = FencedClient(BotApiClient(emulator.url, BOT_TOKEN, Timeouts(1, 1)), Lease(job, 0.0, time.monotonic()))
    with pytest.raises(LeaseLost, match="ran out"):
        client.call("getMe")
    assert emulator.calls("getMe") == []


def test_the_master_releases_the_jobs_of_a_dead_worker_at_once(quiet_app):
    replica = settings_of(quiet_app).replica_id
    dead, alive = owner_id(replica, os.getpid(), 4242), owner_id(replica, os.getpid(), 4343)
    dead_id, alive_id = queue(quiet_app, chat_id=1), queue(quiet_app, chat_id=2)
    orphan = claim(quiet_app, lease=timedelta(minutes=5), owner=dead)
    claim(quiet_app, lease=timedelta(minutes=5), owner=alive)
    assert orphan.id == dead_id

    assert release_dead_worker(quiet_app, 4242) == 1
    released = row(quiet_app, dead_id)
    assert (released.locked_until, released.claim_token, released.locked_by) == (None, None, None)
    assert row(quiet_app, alive_id).locked_by == alive
    again = claim(quiet_app)  # no waiting for the five-minute lease
    assert again.id == dead_id
    assert write(quiet_app, lambda s: jobs.mark_done(s, orphan)) is False
