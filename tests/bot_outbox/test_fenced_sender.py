"""Senders under fenced leases: one that lost its job stops, and a job that fails for good tells its kind.

Each test runs a real sender with a small runner of its own (registered the
way main.register_workers registers the domain's), the emulator as Telegram
and real PostgreSQL.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from bot_outbox import jobs
from bot_outbox.runners import JobRunner, run_call, with_plain_calls
from models.outbox import FAILED, PENDING, OutboxJob
from settings import settings_of
from tests.bot_outbox.steps import claim, queue, row, start_sender, write
from tests.helpers import count, wait_until

ADMIN = 500


class SlowJob:
    """A runner that waits, once started, until the test lets it go on; then does ``then``."""

    def __init__(self, then):
        self.started, self.proceed = threading.Event(), threading.Event()
        self.then = then

    def __call__(self, job, context):
        self.started.set()
        assert self.proceed.wait(10), "the test never let the job go on"
        self.then(job, context)


class AdminNotice:
    """A give-up handler: tells the admin, in the transaction that fails the job."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple[int, str]] = []
        self.fail = fail

    def __call__(self, session, job, reason):
        self.calls.append((job.id, reason))
        jobs.enqueue_call(session, "sendMessage", {"chat_id": ADMIN, "text": f"job {job.id} failed for good"},
                          chat_id=ADMIN)
        if self.fail:
            raise RuntimeError("the handler has a bug")


def refused_by_telegram(job, context):
    context.client.call("sendMessage", {"chat_id": job.chat_id})  # no text: Telegram answers 400


def take_over(app, slow: SlowJob):
    """Another sender claims the running job, as one would once its lease had expired."""
    assert slow.started.wait(10)
    lease = timedelta(seconds=settings_of(app).outbox_lease_seconds)
    return claim(app, after=lease + timedelta(seconds=1), lease=timedelta(minutes=5))


def test_a_sender_that_lost_its_job_mid_run_stops_and_records_nothing(quiet_app, emulator, caplog):
    caplog.set_level(logging.WARNING)

    def save_then_send(job, context):
        context.save_state({"step": "created"})
        context.client.call("sendMessage", {"chat_id": job.chat_id, "text": "from the first sender"})

    slow = SlowJob(save_then_send)
    start_sender(quiet_app, {"slow": slow})
    job_id = queue(quiet_app, 90, kind="slow")
    thief = take_over(quiet_app, slow)
    slow.proceed.set()

    wait_until(lambda: f"outbox job {job_id} (slow) stopped" in caplog.text, message="the first sender stopping")
    held = row(quiet_app, job_id)
    assert (held.status, held.state, held.claim_token) == (PENDING, None, thief.claim_token)
    assert emulator.calls("sendMessage") == []
    # The sender that holds it now finishes it.
    assert write(quiet_app, lambda s: jobs.mark_done(s, thief))


def test_a_job_refused_for_good_tells_its_kind_in_the_same_transaction(quiet_app, emulator):
    notice = AdminNotice()
    start_sender(quiet_app, {"probe": JobRunner(refused_by_telegram, on_give_up=notice)})
    job_id = queue(quiet_app, 91, kind="probe")

    told = emulator.wait_for_call("sendMessage", lambda call: call.ok and call.params["chat_id"] == ADMIN)
    assert told.params["text"] == f"job {job_id} failed for good"
    failed = row(quiet_app, job_id)
    assert failed.status == FAILED and failed.attempts == 1
    assert [(called_id, "400" in reason) for called_id, reason in notice.calls] == [(job_id, True)]


def test_a_job_that_kept_failing_for_a_day_is_given_up_and_its_kind_told(quiet_app, emulator):
    emulator.inject("sendMessage", "5xx", times=1, status=502)
    notice = AdminNotice()
    start_sender(quiet_app, {"probe": JobRunner(run_call, on_give_up=notice)})
    job_id = queue(quiet_app, 92, kind="probe", age=timedelta(hours=25),
                   payload={"method": "sendMessage", "params": {"chat_id": 92, "text": "late"}})

    emulator.wait_for_call("sendMessage", lambda call: call.ok and call.params["chat_id"] == ADMIN)
    assert row(quiet_app, job_id).status == FAILED
    [(called_id, reason)] = notice.calls
    assert called_id == job_id and reason.startswith("gave up after 1 attempts") and "502" in reason


def test_a_broken_give_up_handler_does_not_keep_the_job_coming_back(quiet_app, emulator, caplog):
    notice = AdminNotice(fail=True)
    start_sender(quiet_app, {"probe": JobRunner(refused_by_telegram, on_give_up=notice)})
    job_id = queue(quiet_app, 93, kind="probe")

    wait_until(lambda: row(quiet_app, job_id).status == FAILED, message="the job failed")
    assert len(notice.calls) == 1 and "give-up handler failed" in caplog.text
    # What the handler wrote before it raised was rolled back with it.
    assert count(quiet_app, OutboxJob, OutboxJob.chat_id == ADMIN) == 0


def test_a_sender_that_lost_its_job_neither_fails_it_nor_calls_the_handler(quiet_app, emulator, caplog):
    caplog.set_level(logging.WARNING)
    notice = AdminNotice()
    slow = SlowJob(refused_by_telegram)
    start_sender(quiet_app, {"probe": JobRunner(slow, on_give_up=notice)})
    job_id = queue(quiet_app, 94, kind="probe")
    thief = take_over(quiet_app, slow)
    slow.proceed.set()

    # The heartbeat sees the takeover first (no call is made), or the fenced settle does (after the refusal).
    stopped, left = f"outbox job {job_id} (probe) stopped", f"outbox job {job_id} (probe) is held by another sender"
    wait_until(lambda: stopped in caplog.text or left in caplog.text, message="the first sender letting go")
    held = row(quiet_app, job_id)
    assert (held.status, held.claim_token, held.last_error) == (PENDING, thief.claim_token, None)
    assert notice.calls == []


def test_plain_functions_and_job_runners_share_the_registry():
    def handler(session, job, reason):
        return None

    registry = with_plain_calls({"plain": refused_by_telegram, "hooked": JobRunner(refused_by_telegram, handler)})
    assert registry["plain"] == JobRunner(refused_by_telegram)
    assert registry["hooked"].on_give_up is handler
    assert registry[jobs.CALL].run is run_call
