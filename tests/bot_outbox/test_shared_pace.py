"""Telegram's pace is one schedule in the database: every sender of every replica keeps to it together."""
from __future__ import annotations

import math
import threading

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from bot_outbox import jobs
from bot_outbox.pacing import SharedPace, Turn
from models.base import db
from models.outbox import DONE, OutboxJob
from models.outbox_pace import OutboxPace
from stack_harness.bot_env import make_env
from tests.helpers import build_app, busiest_second, count, wait_until
from worker_process import lifecycle

LIMIT = 20


def race_for_turns(engine, pace: SharedPace, racers: int) -> list[Turn]:
    """Every racer reserves one turn in its own transaction, all released at once."""
    start = threading.Barrier(racers)
    turns: list[Turn] = []
    errors: list[BaseException] = []

    def racer():
        try:
            with Session(engine) as session:
                start.wait(timeout=10)
                turn = pace.reserve(session)
                session.commit()
            turns.append(turn)
        except BaseException as error:  # reported by the test, not lost in a thread
            errors.append(error)

    threads = [threading.Thread(target=racer) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert len(turns) == racers
    return turns


def assert_evenly_spaced(turns: list[Turn], pace: SharedPace) -> None:
    moments = sorted(turn.at for turn in turns)
    gaps = [later - earlier for earlier, later in zip(moments, moments[1:])]
    assert min(gaps) == pytest.approx(pace.interval, abs=1e-6)  # no two racers share a turn
    first_second = [moment for moment in moments if moment < moments[0] + 1.0]
    # The limit less the jitter allowance: 20 turns take 1.045 s, so 19 fit in a second, the rest go later.
    assert len(first_second) == math.ceil(1 / pace.interval) == LIMIT - 1
    assert busiest_second(moments) == LIMIT - 1
    # Each racer is told to wait for the turns ahead of it, and no longer: the first goes at once.
    by_turn = sorted(turns, key=lambda turn: turn.at)
    assert by_turn[0].wait == 0
    assert all(0 <= turn.wait <= place * pace.interval + 1e-6 for place, turn in enumerate(by_turn))


def test_racing_senders_get_exactly_the_limit_per_second_on_postgresql(quiet_app, pg_database_url):
    racers = 3 * LIMIT
    engine = create_engine(pg_database_url, pool_size=racers, max_overflow=0)
    try:
        turns = race_for_turns(engine, SharedPace(LIMIT), racers)
    finally:
        engine.dispose()
    assert_evenly_spaced(turns, SharedPace(LIMIT))
    with quiet_app.app_context():
        [row] = db.session.scalars(select(OutboxPace)).all()
        assert row.next_turn_at == pytest.approx(max(turn.at for turn in turns) + SharedPace(LIMIT).interval)


def test_racing_senders_get_exactly_the_limit_per_second_on_sqlite(tmp_path):
    """The embedded database of local mode runs the same schedule with its own statement."""
    engine = create_engine(f"sqlite:///{tmp_path / 'pace.sqlite3'}", connect_args={"timeout": 10})
    OutboxPace.__table__.create(engine)
    try:
        turns = race_for_turns(engine, SharedPace(LIMIT), 2 * LIMIT)
    finally:
        engine.dispose()
    assert_evenly_spaced(turns, SharedPace(LIMIT))


def test_an_idle_pace_gives_the_next_turn_at_once(quiet_app):
    """Turns do not pile up while nothing is sent: the first call after a quiet spell goes now."""
    pace = SharedPace(LIMIT)
    with quiet_app.app_context():
        first = pace.reserve(db.session)
        db.session.commit()
        wait_until(lambda: _now_on_database() > first.at + 2 * pace.interval, message="the turns to pass")
        later = pace.reserve(db.session)
        db.session.commit()
    assert first.wait == 0 and later.wait == 0


def _now_on_database() -> float:
    return db.session.scalar(text("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS double precision)"))


@pytest.fixture
def two_replicas(pg_database_url, emulator):
    """Two apps on one database, each with its senders running: two replicas of one bot."""
    replicas = []
    for name in ("replica-a", "replica-b"):
        env = make_env(pg_database_url, emulator.url, OUTBOX_MAX_PER_SECOND=str(LIMIT), OUTBOX_SENDERS="4",
                       RAILWAY_REPLICA_ID=name)
        replicas.append(build_app(env, outbox_poll_seconds=0.1))
    yield replicas
    for app in replicas:
        lifecycle.shutdown(app)


def test_two_replicas_together_keep_to_the_limit(two_replicas, emulator):
    first, second = two_replicas
    backlog = 120
    with first.app_context():
        for n in range(backlog):
            jobs.enqueue_call(db.session, "sendMessage", {"chat_id": 5000 + n, "text": f"news {n}"}, chat_id=5000 + n)
        db.session.commit()
    for app in two_replicas:
        app.extensions["outbox_sender"].notify(backlog)

    calls = emulator.wait_for_calls("sendMessage", backlog, timeout=60)
    wait_until(lambda: count(first, OutboxJob, OutboxJob.status == DONE) == backlog, message="every job done")

    assert sorted(call.params["chat_id"] for call in calls) == [5000 + n for n in range(backlog)]
    assert all(call.ok for call in calls)
    times = [call.time for call in calls]
    # Turns are spaced by the pace; a call made a little late beside one on time can add one to a second.
    assert busiest_second(times) <= LIMIT + 1
    # Both replicas sent, and together at nearly the limit (one replica alone would not be the test).
    with first.app_context():
        owners = db.session.scalars(select(OutboxJob.locked_by).where(OutboxJob.status == DONE)).all()
    assert {owner.split(":")[0] for owner in owners} == {"replica-a", "replica-b"}
    assert busiest_second(times) >= LIMIT // 2  # not starved (a loaded 2-core machine sends slower)


def test_local_mode_on_sqlite_sends_at_the_shared_pace(tmp_path, emulator):
    """The embedded database runs the same schedule: a backlog drains, paced, through real senders."""
    env = make_env(f"sqlite:///{tmp_path}/bot.sqlite3", emulator.url, OUTBOX_MAX_PER_SECOND=str(LIMIT))
    app = build_app(env, outbox_poll_seconds=0.1)
    try:
        backlog = 30
        with app.app_context():
            for n in range(backlog):
                jobs.enqueue_call(db.session, "sendMessage", {"chat_id": 7000 + n, "text": "hi"}, chat_id=7000 + n)
            db.session.commit()
        app.extensions["outbox_sender"].notify(backlog)
        calls = emulator.wait_for_calls("sendMessage", backlog, timeout=30)
        wait_until(lambda: count(app, OutboxJob, OutboxJob.status == DONE) == backlog, message="every job done")
        assert busiest_second([call.time for call in calls]) <= LIMIT
        with app.app_context():
            assert db.session.get(OutboxPace, "telegram").next_turn_at > 0
    finally:
        lifecycle.shutdown(app)
