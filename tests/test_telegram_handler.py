"""Which updates skip the session: the commands that read only the settings cost two round trips.

Round trips are counted where they arrive: PostgreSQL logs every statement
of the test's database (log_statement = all), one log entry per message.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, make_url, select

import telegram_handler
from models.base import db
from models.dead_letter import DeadLetter
from models.outbox import OutboxJob
from models.processed_update import ProcessedUpdate
from models.user import User
from stack_harness.bot_env import make_env
from tests.helpers import build_app, command, count, post_update, sessions_of, wait_until

LOGGED = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] LOG:  statement: (.*)$", re.MULTILINE)


class StatementLog:
    """What PostgreSQL itself logs of every statement on this test's database: one entry per message it ran.

    Each entry is (backend pid, the statement's first two words); a message
    that carries two statements ("BEGIN; WITH ...") is one entry.
    """

    def __init__(self, cluster):
        self._path = cluster.log_path
        self._since = self._path.stat().st_size

    def request_statements(self, first_words: str, before: int = 0) -> list[str]:
        """The last message that began with ``first_words`` and the next one its backend ran after it
        (and the ``before`` ones it ran just before)."""
        with open(self._path, "rb") as log:
            log.seek(self._since)
            entries = [(pid, " ".join(text.split()[:2]).upper())
                       for pid, text in LOGGED.findall(log.read().decode(errors="replace"))]
        start = max(i for i, (_, words) in enumerate(entries) if words.startswith(first_words))
        backend = entries[start][0]
        earlier = [words for pid, words in entries[:start] if pid == backend][-before:] if before else []
        return earlier + [words for pid, words in entries[start:] if pid == backend][:2]


@pytest.fixture
def statement_log(pg_cluster, pg_database_url):
    """Set before the app opens its pool: log_statement applies to connections opened afterwards."""
    engine = create_engine(pg_cluster.url())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'ALTER DATABASE "{make_url(pg_database_url).database}" SET log_statement = \'all\'')
    engine.dispose()
    return StatementLog(pg_cluster)


@pytest.mark.parametrize("text", ["/start", "/help", "/plans", "/terms", "/help@SomeBot", "hello there"])
def test_a_command_that_reads_only_the_settings_costs_its_intake_with_begin_fused_in(statement_log, app, client,
                                                                                       text):
    response = post_update(client, command(20, 61, text))
    assert response.status_code == 200 and response.json["method"] == "sendMessage"
    assert statement_log.request_statements("BEGIN; WITH") == ["BEGIN; WITH", "COMMIT"], \
        "two round trips: the intake carrying BEGIN, then COMMIT"
    assert count(app, ProcessedUpdate, ProcessedUpdate.update_id == 20) == 1 and count(app, User, User.id == 61) == 1

    again = post_update(client, command(20, 61, text))
    assert again.status_code == 200 and again.data == b"", "a redelivery finds the committed claim"


def test_start_with_a_referral_code_is_stored_in_the_update_transaction(statement_log, app, client):
    response = post_update(client, command(21, 62, "/start promo_winter"))
    assert response.status_code == 200 and "Welcome" in response.json["text"]
    assert statement_log.request_statements("WITH CLAIMED") == ["WITH CLAIMED", "SELECT USERS.ID,"], \
        "the session's transaction: the intake, then the handler reads the user"
    with app.app_context():
        assert db.session.get(User, 62).referral_source == "promo_winter"


def test_commands_that_read_the_database_keep_the_transaction(statement_log, app, client):
    response = post_update(client, command(22, 63, "/status"))
    assert response.status_code == 200 and "not a member" in response.json["text"]
    assert statement_log.request_statements("WITH CLAIMED")[1].startswith("SELECT")


def test_without_replies_on_the_answer_every_update_takes_the_transaction(statement_log, pg_database_url, emulator):
    app = build_app(make_env(pg_database_url, emulator.url), background=False, reply_via_webhook_response=False)
    response = post_update(app.test_client(), command(23, 64, "/help"))
    assert response.status_code == 200 and response.data == b""
    assert count(app, OutboxJob) == 1, "the reply goes through the outbox, in the update's transaction"
    assert statement_log.request_statements("WITH CLAIMED") == ["WITH CLAIMED", "INSERT INTO"], "the outbox job"


def test_a_handler_that_uses_the_database_on_the_settings_only_path_is_refused(statement_log, app, client,
                                                                               monkeypatch):
    # /status reads the membership: listed here by mistake, its read would run outside the committed intake.
    monkeypatch.setattr(telegram_handler, "SETTINGS_ONLY_COMMANDS", frozenset({"status", "help"}))
    response = post_update(client, command(24, 65, "/status"))
    assert response.status_code == 200 and response.data == b""
    assert count(app, DeadLetter, DeadLetter.update_id == 24) == 1
    assert "SETTINGS_ONLY_COMMANDS" in db_error_of(app, 24)
    assert count(app, ProcessedUpdate, ProcessedUpdate.update_id == 24) == 1, "quarantined: redeliveries skip it"
    assert count(app, User, User.id == 65) == 0, "the intake's upsert rolled back with the failed handler"
    assert post_update(client, command(25, 66, "/help")).json["method"] == "sendMessage"
    assert statement_log.request_statements("BEGIN; WITH") == ["BEGIN; WITH", "COMMIT"]
    # The outbox senders run their own short transactions meanwhile: none may stay open.
    wait_until(lambda: sessions_of(app, "idle in transaction") == 0, timeout=5, message="no transaction left open")


def db_error_of(app, update_id: int) -> str:
    with app.app_context():
        return db.session.scalars(select(DeadLetter.error).where(DeadLetter.update_id == update_id)).one()


def test_behind_a_transaction_pooler_the_transaction_begins_with_its_time_limits(statement_log, pg_database_url,
                                                                                  emulator):
    # There the limits are SET LOCAL as each transaction begins: before a fused BEGIN they would not apply.
    app = build_app({**make_env(pg_database_url, emulator.url), "DB_POOLED": "true"}, background=False)
    response = post_update(app.test_client(), command(26, 67, "/help"))
    assert response.status_code == 200 and response.json["method"] == "sendMessage"
    assert statement_log.request_statements("BEGIN") == ["BEGIN", "SET LOCAL"], "an ordinary transaction, limits first"



def test_a_statement_timeout_on_the_settings_only_path_is_an_outage_not_a_bug(pg_database_url, emulator):
    app = build_app({**make_env(pg_database_url, emulator.url), "DB_STATEMENT_TIMEOUT_MS": "300"}, background=False)
    client = app.test_client()
    blocker = create_engine(pg_database_url).connect()
    try:
        # A first delivery of update 30 still in flight elsewhere: its ledger row is held, not committed.
        blocker.exec_driver_sql("INSERT INTO processed_updates (update_id, kind, processed_at) "
                                "VALUES (30, 'message', now())")
        response = post_update(client, command(30, 70, "/help"))
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert count(app, DeadLetter) == 0, "a timeout is the database's, not a bug in the handler"
        assert sessions_of(app, "idle in transaction") == 1, "only the blocker's: ours rolled back"
    finally:
        blocker.rollback()
        blocker.close()
    again = post_update(client, command(30, 70, "/help"))
    assert again.status_code == 200 and again.json["method"] == "sendMessage", "the redelivery is handled"


def test_a_private_text_without_a_sender_takes_the_session(statement_log, app, client):
    update = command(27, 68, "hello there")
    del update["message"]["from"]  # hostile or odd input: nothing to count a flood window on
    response = post_update(client, update)
    assert response.status_code == 200 and response.json["method"] == "sendMessage"
    assert statement_log.request_statements("INSERT INTO", before=1) == ["BEGIN", "INSERT INTO", "COMMIT"], \
        "psycopg2's own BEGIN, the ledger claim, COMMIT: a transaction, never an autocommitted claim"
