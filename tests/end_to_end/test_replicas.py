"""Two replicas, end to end: two real gunicorn servers from the Procfile on one PostgreSQL, one Telegram.

Railway runs several replicas of the web process on one database. The
in-process tests (tests/bot_outbox/test_shared_pace.py, test_leases.py,
tests/worker_process/test_periodic_jobs.py) show the mechanisms with two
Flask apps in one process; here the same promises are checked across two
real servers started together (stack_harness/replicas.py), each with its
share of the connection budget:

* both start at once on an empty database, and the schema is migrated once;
* an update Telegram delivers to both (a redelivery that lands on the other
  replica) is handled once, a payment included;
* their outbox senders keep to one pace together, not one each;
* their timers sweep and reconcile one at a time, each action once.
"""
from __future__ import annotations

import ast
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle, pairwise

import pytest
import requests
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from bot_outbox.pacing import SharedPace
from botapi_emulator.updates import successful_payment_update
from settings.model import Settings
from stack_harness.bot_env import ADMIN_ID
from stack_harness.real_server import REPO, post_raw
from stack_harness.replicas import replica_servers, running_replicas, start_together
from tests.helpers import busiest_second, command, wait_until
from tests.membership.flows import invite_message

pytestmark = pytest.mark.timeout(180)

DEFAULT_BUDGET = Settings.db_max_connections  # DB_MAX_CONNECTIONS's default: here, for the whole service
NO_RECONCILE = {"RECONCILE_INTERVAL_SECONDS": "0"}  # its timer's random first run would add calls to count
OUR_UPDATES = 900_000_001  # above the emulator's own update ids
TEST_CONNECTIONS = "replica-test"  # application_name of the test's own connections


@pytest.fixture
def database(pg_database_url):
    """The test's own look at the replicas' database (two connections at most, none of theirs)."""
    engine = create_engine(pg_database_url, pool_size=2, max_overflow=0,
                           connect_args={"application_name": TEST_CONNECTIONS})
    yield engine
    engine.dispose()


def scalar(engine, sql: str, **params):
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def rows(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql), params)]


def health(server) -> dict | None:
    """/health's answer when it is 200 (the database reachable, the pool not saturated), else None."""
    response = requests.get(f"{server.url}/health", timeout=5)
    return response.json() if response.status_code == 200 else None


def all_healthy(servers) -> list[dict] | None:
    """Every replica's /health answer, once all of them answer 200."""
    answers = [health(server) for server in servers]
    return answers if all(answers) else None


def outbox_settled(engine) -> bool:
    """Every queued Bot API call has been made (or given up): nothing more will reach the emulator."""
    return scalar(engine, "SELECT count(*) FROM outbox WHERE status = 'pending'") == 0


def post_all_at_once(deliveries: list[tuple[object, dict]]) -> list[requests.Response]:
    """POST every (server, update) pair together, released by one barrier: a real race, not a sequence."""
    start = threading.Barrier(len(deliveries))

    def deliver(pair):
        server, update = pair
        start.wait(timeout=10)
        return post_raw(server, update, timeout=30)

    with ThreadPoolExecutor(max_workers=len(deliveries)) as pool:
        return list(pool.map(deliver, deliveries))


# --- 1. starting together ---------------------------------------------------------------------


def migration_lock_key() -> int:
    """The advisory lock key migrations/env.py serializes replicas on (read, as importing env.py runs it)."""
    tree = ast.parse((REPO / "migrations" / "env.py").read_text())
    return next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and [target.id for target in node.targets if isinstance(target, ast.Name)] == ["MIGRATION_LOCK_KEY"])


def waiting_for_advisory_locks(connection) -> int:
    return connection.execute(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).scalar()


def test_replicas_starting_together_on_an_empty_database_migrate_once_and_both_serve(
        pg_database_url, emulator, database):
    with replica_servers(pg_database_url, emulator, **NO_RECONCILE) as servers, \
            ThreadPoolExecutor(max_workers=1) as starter, database.connect() as gate:
        # Hold the migrations' lock while both start: both are then inside their migration at once, for sure.
        gate.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": migration_lock_key()})
        starting = starter.submit(start_together, servers)
        wait_until(lambda: waiting_for_advisory_locks(gate) == len(servers) or starting.done(), timeout=30,
                   message="both replicas to wait on the migration lock")
        if starting.done():
            starting.result()  # a start that failed says why
            pytest.fail("the replicas started without waiting for the migration lock")
        gate.rollback()
        starting.result()

        answers = wait_until(lambda: all_healthy(servers), timeout=15, message="/health 200 from both replicas")
        head = ScriptDirectory(str(REPO / "migrations")).get_current_head()
        assert rows(database, "SELECT version_num FROM alembic_version") == [(head,)]
        migrated = [server for server in servers if "Running upgrade  -> 0001" in server.log_text()]
        assert len(migrated) == 1, "exactly one replica ran the migrations; the other found the schema at head"
        # Each sized its pools to its share, so the two together stay within the database's budget.
        per_worker = {answer["pool"]["capacity"] + 1 for answer in answers}  # + the /health probe
        assert len(per_worker) == 1
        assert sum(len(server.worker_pids()) for server in servers) * per_worker.pop() <= DEFAULT_BUDGET


# --- 2. exactly once across replicas ----------------------------------------------------------

PAYER = 4001
ASKERS = {4002: "/help", 4003: "/status", 4004: "/start"}


def unannounced_payment(emulator, user_id: int, update_id: int) -> tuple[str, dict]:
    """A real invoice of the bot, paid at Telegram, whose successful_payment we deliver ourselves.

    /start and the plan's button go through the emulator (to the first
    replica); the payment is recorded without an update, so the test can hand
    its one update to both replicas at the same moment.
    """
    user = emulator.user(user_id, "Payer")
    menu = emulator.send_message(user, "/start").delivery.response_call
    since = emulator.next_call_index
    emulator.press_button(user, menu, "buy:month")
    emulator.wait_for_call("sendInvoice", lambda call: call.params["chat_id"] == user_id, timeout=30, since=since)
    invoice = [invoice for invoice in emulator.invoices() if invoice["chat_id"] == user_id][-1]
    payment = emulator.record_transaction_without_update(user, invoice["amount"], invoice["payload"])
    update = successful_payment_update(update_id, update_id, emulator.now(), user.to_json(),
                                       payment.successful_payment_json())
    return payment.charge_id, update


def webhook_outcomes(server) -> Counter:
    """bot_webhook_updates_total by outcome, as this replica counted them (none before its first update)."""
    body = requests.get(f"{server.url}/metrics", timeout=5).text
    return Counter({sample.labels["outcome"]: sample.value
                    for family in text_string_to_metric_families(body) if family.name == "bot_webhook_updates"
                    for sample in family.samples if sample.name.endswith("_total")})


def replies_to(chat_id: int, responses: list[requests.Response], emulator, since: int) -> int:
    """Messages a chat got: those riding on a webhook response plus those the outbox sent."""
    riding = [r.json() for r in responses if r.content and r.json().get("chat_id") == chat_id]
    sent = [c for c in emulator.calls("sendMessage", since) if c.params["chat_id"] == chat_id]
    return len(riding) + len(sent)


def test_an_update_delivered_to_both_replicas_at_once_is_handled_once(pg_database_url, emulator, database):
    with running_replicas(pg_database_url, emulator, **NO_RECONCILE) as servers:
        charge_id, payment = unannounced_payment(emulator, PAYER, OUR_UPDATES)
        commands = [command(OUR_UPDATES + n, user, text_) for n, (user, text_) in enumerate(ASKERS.items(), 1)]
        updates = [payment, *commands]
        since = emulator.next_call_index
        before = sum((webhook_outcomes(server) for server in servers), Counter())

        responses = post_all_at_once([(server, update) for update in updates for server in servers])
        assert [r.status_code for r in responses] == [200] * len(responses)
        invite_message(emulator, PAYER, since=since)
        wait_until(lambda: outbox_settled(database), timeout=20, message="the outbox to drain")

        outcomes = sum((webhook_outcomes(server) for server in servers), Counter()) - before
        assert (outcomes["processed"], outcomes["duplicate"]) == (len(updates), len(updates))
        ids = [update["update_id"] for update in updates]
        assert scalar(database, "SELECT count(*) FROM processed_updates WHERE update_id = ANY(:ids)", ids=ids) \
            == len(updates)
        assert rows(database, "SELECT charge_id, source FROM payments") == [(charge_id, "webhook")]
        assert scalar(database, "SELECT count(*) FROM entitlements WHERE charge_id = :c", c=charge_id) == 1
        assert len(emulator.calls("createChatInviteLink", since)) == 1
        invites = [c for c in emulator.calls("sendMessage", since) if "t.me/" in c.params.get("text", "")]
        assert [c.params["chat_id"] for c in invites] == [PAYER]
        for user, (first, second) in zip(ASKERS, zip(responses[2::2], responses[3::2])):
            assert replies_to(user, [first, second], emulator, since) == 1, ASKERS[user]


# --- 3. one pace for both ---------------------------------------------------------------------

PACE = 10  # OUTBOX_MAX_PER_SECOND: low, so that two replicas pacing alone would clearly show (about 18/s)
BACKLOG = 40
FIRST_RECIPIENT = 6000


def connections_now(engine) -> int:
    """Backends connected to this database, the test's own excepted."""
    return scalar(engine, "SELECT count(*) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND application_name <> :test", test=TEST_CONNECTIONS)


def test_two_replicas_together_keep_to_one_pace(pg_database_url, emulator, database):
    with running_replicas(pg_database_url, emulator, OUTBOX_MAX_PER_SECOND=str(PACE),
                          REPLY_VIA_WEBHOOK_RESPONSE="false", **NO_RECONCILE) as servers:
        since = emulator.next_call_index
        updates = [command(OUR_UPDATES + n, FIRST_RECIPIENT + n) for n in range(BACKLOG)]
        peak = 0

        def sample_then_count() -> bool:
            nonlocal peak
            peak = max(peak, connections_now(database))
            return len(emulator.calls("sendMessage", since)) >= BACKLOG

        with ThreadPoolExecutor(max_workers=1) as poster:
            posting = poster.submit(post_all_at_once, list(zip(cycle(servers), updates)))
            wait_until(sample_then_count, timeout=60, interval=0.05, message=f"{BACKLOG} messages sent")
            assert [r.status_code for r in posting.result()] == [200] * BACKLOG
        wait_until(lambda: outbox_settled(database), timeout=20, message="the outbox to drain")

        calls = emulator.calls("sendMessage", since)
        assert sorted(c.params["chat_id"] for c in calls) == [FIRST_RECIPIENT + n for n in range(BACKLOG)]
        times = sorted(call.time for call in calls)
        gaps = [round(later - earlier, 3) for earlier, later in pairwise(times)]
        # One more than the pace allows for a turn delivered a little late beside one on time; two paces
        # would show about twice as many.
        assert busiest_second(times) <= PACE + 1, (busiest_second(times), gaps)
        # One schedule: the backlog took as long as one pace needs for it, not half of that.
        assert times[-1] - times[0] >= 0.9 * (BACKLOG - 1) * SharedPace(PACE).interval, gaps
        senders = rows(database, "SELECT DISTINCT split_part(locked_by, ':', 1) FROM outbox WHERE status = 'done'")
        assert sorted(senders) == [("replica-a",), ("replica-b",)], "both replicas sent"
        assert peak <= DEFAULT_BUDGET, f"{peak} connections open at once"


# --- 4. periodic jobs one at a time -----------------------------------------------------------

EXPIRED = (7001, 7002, 7003)
MISSED_PAYER = 7100
RECONCILE_CALL_SECONDS = 0.4  # how long Telegram takes to list Star transactions: a run's span
RECONCILE_RUNS = 6


def expire_memberships(engine, user_ids) -> None:
    """Members whose access ran out three days ago: the next sweep removes them."""
    with engine.begin() as connection:
        for user_id in user_ids:
            connection.execute(text("INSERT INTO memberships (user_id, expires_at, updated_at, in_channel) "
                                    "VALUES (:id, now() - interval '3 days', now(), true)"), {"id": user_id})


def lease_holder_pids(engine) -> set[int]:
    """Worker pids holding a lease now (a holder is host:pid:nonce)."""
    return {int(holder.split(":")[1]) for (holder,) in rows(engine, "SELECT holder FROM leases")}


def test_sweeps_and_reconciliations_of_both_replicas_run_one_at_a_time(pg_database_url, emulator, database):
    emulator.set_latency("getStarTransactions", RECONCILE_CALL_SECONDS)
    with running_replicas(pg_database_url, emulator, SWEEP_INTERVAL_SECONDS="1",
                          RECONCILE_INTERVAL_SECONDS="1") as servers:
        workers = {pid: server for server in servers for pid in server.worker_pids()}
        charge_id, _ = unannounced_payment(emulator, MISSED_PAYER, OUR_UPDATES)  # never delivered: reconcile finds it
        since = emulator.next_call_index
        expire_memberships(database, EXPIRED)
        holders: set[int] = set()

        def both_replicas_ran_it_all() -> bool:
            holders.update(lease_holder_pids(database))
            return ({workers[pid].url for pid in holders if pid in workers} == {s.url for s in servers}
                    and len(emulator.calls("getStarTransactions", since)) >= RECONCILE_RUNS
                    and len(emulator.calls("unbanChatMember", since)) >= len(EXPIRED))

        wait_until(both_replicas_ran_it_all, timeout=40, interval=0.05, message="both replicas to take the leases")
        invite_message(emulator, MISSED_PAYER, since=since)
        wait_until(lambda: outbox_settled(database), timeout=20, message="the outbox to drain")
        assert rows(database, "SELECT charge_id, source FROM payments") == [(charge_id, "reconcile")]

    # Both servers have stopped: what is counted from here on is complete.
    listed = sorted(call.time for call in emulator.calls("getStarTransactions", since))
    gaps = [later - earlier for earlier, later in pairwise(listed)]
    assert min(gaps) >= RECONCILE_CALL_SECONDS - 0.02, f"two reconciliations overlapped: {gaps}"
    assert len(emulator.calls("createChatInviteLink", since)) == 1
    told = [c for c in emulator.calls("sendMessage", since)
            if c.params["chat_id"] == ADMIN_ID and "the webhook missed" in c.params["text"]]
    assert len(told) == 1
    for method in ("banChatMember", "unbanChatMember"):
        removed = Counter(c.params["user_id"] for c in emulator.calls(method, since))
        assert removed == Counter(EXPIRED), (method, removed)
    notices = Counter(c.params["chat_id"] for c in emulator.calls("sendMessage", since)
                      if "membership has ended" in c.params["text"])
    assert notices == Counter(EXPIRED)
