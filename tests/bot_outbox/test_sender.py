"""The outbox: delivered after commit, in order per chat, retried the way Telegram asks."""
from __future__ import annotations

import logging
from datetime import timedelta

from bot_outbox import jobs
from models.base import db
from models.outbox import DONE, FAILED, PENDING, OutboxJob
from stack_harness.bot_env import BOT_TOKEN, make_env
from tests.helpers import build_app, enqueue, wait_until


def job(app, job_id: int) -> OutboxJob:
    with app.app_context():
        return db.session.get(OutboxJob, job_id)


def test_jobs_for_one_chat_are_sent_in_order(app, emulator):
    texts = [f"message {n}" for n in range(6)]
    ids = enqueue(app, *[("sendMessage", {"chat_id": 77, "text": text}, 77) for text in texts])
    calls = emulator.wait_for_calls("sendMessage", len(texts), timeout=10)
    assert [call.params["text"] for call in calls] == texts
    wait_until(lambda: all(job(app, i).status == DONE for i in ids), message="jobs marked done")


def test_429_waits_retry_after_then_succeeds(app, emulator):
    emulator.inject("sendMessage", "429", times=1, retry_after=1)
    [job_id] = enqueue(app, ("sendMessage", {"chat_id": 78, "text": "hello"}, 78))
    refused = emulator.wait_for_call("sendMessage", lambda call: not call.ok)
    delivered = emulator.wait_for_call("sendMessage", lambda call: call.ok, timeout=10)
    assert refused.http_status == 429
    assert delivered.time - refused.time >= 1.0
    wait_until(lambda: job(app, job_id).status == DONE, message="job done")
    assert job(app, job_id).attempts == 2


def test_5xx_is_retried_with_backoff(app, emulator):
    emulator.inject("sendMessage", "5xx", times=1, status=502)
    [job_id] = enqueue(app, ("sendMessage", {"chat_id": 79, "text": "hi"}, 79))
    emulator.wait_for_call("sendMessage", lambda call: call.ok, timeout=10)
    wait_until(lambda: job(app, job_id).status == DONE, message="job done")
    assert job(app, job_id).attempts == 2


def test_a_refused_call_is_not_retried(app, emulator):
    [job_id] = enqueue(app, ("sendMessage", {"chat_id": 80}, 80))  # no text: 400
    wait_until(lambda: job(app, job_id).status == FAILED, message="job failed")
    failed = job(app, job_id)
    assert failed.attempts == 1 and "400" in failed.last_error
    # the chat is not blocked behind it
    enqueue(app, ("sendMessage", {"chat_id": 80, "text": "next"}, 80))
    emulator.wait_for_call("sendMessage", lambda call: call.ok and call.params["chat_id"] == 80)


def test_a_job_left_by_a_dead_sender_is_picked_up_after_its_lease(app, emulator):
    [job_id] = enqueue(app, ("sendMessage", {"chat_id": 81, "text": "orphan"}, 81))
    # Claim it as a sender that then dies would: leased, never settled.
    with app.app_context():
        db.session.execute(OutboxJob.__table__.update().values(not_before=OutboxJob.created_at))
        claimed = jobs.claim_next(db.session, lease=timedelta(seconds=1))
        db.session.commit()
    if claimed is not None:  # our own senders may have been faster; then nothing is orphaned
        assert claimed.id == job_id
    emulator.wait_for_call("sendMessage", lambda call: call.params.get("text") == "orphan", timeout=10)
    wait_until(lambda: job(app, job_id).status == DONE, message="job done")
    assert job(app, job_id).status != PENDING


def test_unreachable_telegram_is_retried_and_the_token_never_logged(pg_database_url, caplog, capfd):
    caplog.set_level(logging.INFO)
    app = build_app(make_env(pg_database_url, "http://127.0.0.1:9"), outbox_poll_seconds=0.2)
    try:
        [job_id] = enqueue(app, ("sendMessage", {"chat_id": 82, "text": "x"}, 82))
        wait_until(lambda: job(app, job_id).last_error, message="a failed attempt recorded")
        retried = job(app, job_id)
        assert retried.status == PENDING and "ConnectionError" in retried.last_error
        assert BOT_TOKEN not in retried.last_error
        assert "will be retried" in caplog.text
    finally:
        from worker_process import lifecycle
        lifecycle.shutdown(app)
    assert BOT_TOKEN not in caplog.text
    assert BOT_TOKEN not in capfd.readouterr().err
