"""flask --app main broadcast: once per recipient, resumable, blocked users marked and skipped.

Real PostgreSQL, the emulator as Telegram, and the app's own outbox senders
(the ``app`` fixture runs them) or real gunicorn for the subprocess run.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from models.base import db
from models.broadcast import FAILED, SENT, BroadcastRecipient
from models.membership import Membership
from models.user import User
from operations.broadcast import Progress, Stalled, create, follow, progress_line, queue_chunk
from stack_harness.bot_env import make_env
from stack_harness.real_server import flask_cli, running_server
from tests.helpers import build_app
from worker_process import lifecycle

NOW = datetime.now(timezone.utc)
ACTIVE_IDS, EXPIRED_IDS, NEVER_PAID_IDS = (601, 602), (603,), (604,)


def _seed(app) -> None:
    with app.app_context():
        db.session.add_all([User(id=user_id, first_name=f"U{user_id}")
                            for user_id in ACTIVE_IDS + EXPIRED_IDS + NEVER_PAID_IDS])
        db.session.add_all([Membership(user_id=user_id, expires_at=NOW + timedelta(days=5)) for user_id in ACTIVE_IDS]
                           + [Membership(user_id=user_id, expires_at=NOW - timedelta(days=5))
                              for user_id in EXPIRED_IDS])
        db.session.commit()


def _recipients(app, broadcast_id: int) -> dict[int, str]:
    with app.app_context():
        rows = db.session.execute(select(BroadcastRecipient.user_id, BroadcastRecipient.status)
                                  .where(BroadcastRecipient.broadcast_id == broadcast_id)).all()
        db.session.rollback()
        return dict(rows)


def _texts_to(emulator, text: str) -> list[int]:
    return sorted(call.params["chat_id"] for call in emulator.calls("sendMessage") if call.params.get("text") == text)


def test_a_broadcast_reaches_exactly_the_active_members_and_a_resume_sends_nothing_new(app, live, runner, emulator):
    _seed(app)
    result = runner.invoke(args=["broadcast", "--to", "active", "Members: news"])
    assert result.exit_code == 0, result.output
    assert "broadcast 1: 2 sent, 0 failed of 2" in result.output
    assert _texts_to(emulator, "Members: news") == sorted(ACTIVE_IDS)
    assert _recipients(app, 1) == {user_id: SENT for user_id in ACTIVE_IDS}

    again = runner.invoke(args=["broadcast", "--to", "active", "--resume", "Members: news"])
    assert again.exit_code == 0, again.output
    assert "broadcast 1 to active: 0 newly queued" in again.output
    assert _texts_to(emulator, "Members: news") == sorted(ACTIVE_IDS), "someone got it twice"


def test_expired_means_had_a_membership_that_is_over(app, live, runner, emulator):
    _seed(app)
    result = runner.invoke(args=["broadcast", "--to", "expired", "--no-wait", "Come back"])
    assert result.exit_code == 0, result.output
    assert set(_recipients(app, 1)) == set(EXPIRED_IDS)


def test_a_user_who_blocked_the_bot_is_marked_and_skipped_next_time(app, live, runner, emulator):
    _seed(app)
    blocker = EXPIRED_IDS[0]
    emulator.user(blocker, first_name="Blocker")
    emulator.block_bot(blocker)

    result = runner.invoke(args=["broadcast", "--to", "all", "First"])
    assert result.exit_code == 0, result.output
    assert "3 sent, 1 failed of 4" in result.output
    assert _recipients(app, 1)[blocker] == FAILED
    with app.app_context():
        assert db.session.get(User, blocker).blocked_at is not None
        db.session.rollback()

    second = runner.invoke(args=["broadcast", "--to", "all", "Second"])
    assert second.exit_code == 0, second.output
    assert blocker not in _recipients(app, 2)
    assert "3 sent, 0 failed of 3" in second.output


def test_resume_without_an_earlier_broadcast_is_one_line(app, runner):
    result = runner.invoke(args=["broadcast", "--resume", "Never sent"])
    assert result.exit_code == 1
    assert "no earlier broadcast to active with this text" in result.output


def test_the_command_against_real_gunicorn_prints_progress_and_finishes(pg_database_url, emulator):
    env = make_env(pg_database_url, emulator.url)
    seeder = build_app(env, background=False)
    try:
        _seed(seeder)
    finally:
        lifecycle.shutdown(seeder)
    with running_server(pg_database_url, emulator):
        result = flask_cli(env, "broadcast", "--to", "active", "From the real server")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "broadcast 1: 2 sent, 0 failed of 2"
    assert "2/2 sent 2 failed 0" in result.stderr  # the last progress line (plain lines: not a terminal)
    assert "\r" not in result.stderr
    assert _texts_to(emulator, "From the real server") == sorted(ACTIVE_IDS)


def test_following_reports_rate_and_gives_up_when_nothing_moves():
    clock = iter(range(0, 1000, 10))
    readings = iter([Progress(10, 0, 0), Progress(10, 4, 1)] + [Progress(10, 5, 0)] * 100)
    shown = []
    try:
        follow(lambda: next(readings), lambda p, rate: shown.append((p.finished, rate)), stall_seconds=25,
               clock=lambda: next(clock), sleep=lambda _: None)
    except Stalled as stalled:
        assert "is the server running" in str(stalled)
    else:
        raise AssertionError("a broadcast that stopped moving was followed forever")
    assert shown[0] == (0, None)
    assert shown[1][0] == 5 and shown[1][1] > 0
    assert progress_line(Progress(10, 4, 1), rate=2.5).endswith("5/10 sent 4 failed 1  2.5/s  ETA 0:02")


def test_a_run_interrupted_after_one_chunk_resumes_with_the_rest_and_nobody_twice(app, live, runner, emulator):
    _seed(app)
    with app.app_context():
        interrupted = create(db.session, "Half way", "active")
        queued, _ = queue_chunk(db.session, interrupted, after=0, limit=1)  # then the operator's Ctrl-C
        db.session.commit()
    assert queued == 1

    result = runner.invoke(args=["broadcast", "--resume", "--id", "1"])
    assert result.exit_code == 0, result.output
    assert "broadcast 1 to active: 1 newly queued" in result.output
    assert "2 sent, 0 failed of 2" in result.output
    assert _texts_to(emulator, "Half way") == sorted(ACTIVE_IDS)
