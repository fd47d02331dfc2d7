"""A dead worker's outbox jobs resume within seconds, on real gunicorn (2 workers), once and only once.

The gunicorn master releases the jobs of a worker it has reaped (child_exit),
so they need not wait out their leases; the fence keeps a job from being
recorded twice. Figures are printed (run with -s to see them).
"""
from __future__ import annotations

import random
import signal
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from botapi_emulator import BotApiEmulator
from stack_harness.bot_env import BOT_TOKEN, CHANNEL_ID
from stack_harness.gunicorn_server import GunicornHarnessError, GunicornServer
from stack_harness.real_server import running_server
from tests.helpers import wait_until
from tests.membership.flows import buy, invite_message, link_in

pytestmark = pytest.mark.timeout(240)

RESUMED_WITHIN = 5.0  # issue 11: a dead worker's leased jobs resume within 5 s
INVITED_WITHIN = 10.0  # ... and every payer has their invite within 10 s of the last acknowledgement
INVITE_MARK = "t.me/"
PAYER_GAP = 0.6  # seconds between two payers' arrivals during the kill storm


class Database:
    """The server's database as an operator reads it, on a connection of the test's own."""

    def __init__(self, url: str):
        self._engine = create_engine(url, pool_size=1, max_overflow=0)

    def rows(self, sql: str, **params) -> list[tuple]:
        with self._engine.connect() as connection:
            return [tuple(found) for found in connection.execute(text(sql), params)]

    def invite_holders(self) -> dict[int, int]:
        """Running invite jobs: user id -> the pid of the worker holding the job."""
        held = self.rows("SELECT (payload->>'user_id')::bigint, locked_by FROM outbox "
                         "WHERE kind = 'invite' AND status = 'pending' AND locked_by IS NOT NULL")
        return {user: int(owner.rsplit(":", 1)[1]) for user, owner in held}

    def close(self) -> None:
        self._engine.dispose()


def invite_messages(emulator) -> dict[int, list]:
    sent = defaultdict(list)
    for call in emulator.calls("sendMessage"):
        if call.ok and INVITE_MARK in str(call.params.get("text", "")):
            sent[call.params["chat_id"]].append(call)
    return sent


def test_a_worker_killed_mid_invite_is_replaced_within_seconds_and_the_link_made_once(pg_database_url, emulator):
    emulator.inject("createChatInviteLink", "hang", times=1)  # held, never answered: the worker dies inside it
    database = Database(pg_database_url)
    try:
        with running_server(pg_database_url, emulator) as server:
            assert buy(emulator, 3201).ok
            emulator.wait_for_hangs(1)
            holder = wait_until(lambda: database.invite_holders().get(3201), message="the invite job's holder")
            killed_at = time.monotonic()
            server.signal_worker(holder, signal.SIGKILL)
            invite = invite_message(emulator, 3201)
            resumed = time.monotonic() - killed_at
            print(f"\ninvite delivered {resumed:.2f}s after its worker was SIGKILLed")
            assert resumed < RESUMED_WITHIN, f"took {resumed:.1f}s"
            # Well within its 10 s lease: the master released it when it reaped the worker.
            server.wait_for_log(rf"released 1 outbox job\(s\) of dead worker {holder}\b")
            [(attempts, owner)] = wait_until(lambda: database.rows(
                "SELECT attempts, locked_by FROM outbox WHERE kind = 'invite' AND status = 'done'"),
                message="the invite job done")
            assert attempts == 2 and not owner.endswith(f":{holder}")
            assert database.rows("SELECT link FROM invites WHERE user_id = 3201") == [(link_in(invite),)]
        created = [call for call in emulator.calls("createChatInviteLink") if call.ok]
        assert len(created) == 1 and len(invite_messages(emulator)[3201]) == 1
    finally:
        database.close()


class KillStorm:
    """SIGKILLs a worker every second or so, preferring one inside an invite job; waits for each respawn."""

    def __init__(self, server: GunicornServer, database: Database, seed: int = 11):
        self.server, self.database = server, database
        self.rng = random.Random(seed)
        self.kills = 0
        self.mid_invite = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kill-storm", daemon=True)

    def __enter__(self) -> KillStorm:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(60)
        if self.error is not None:
            raise AssertionError(f"the kill storm failed: {self.error!r}") from self.error

    def _run(self) -> None:
        try:
            self._storm()
        except BaseException as error:  # noqa: BLE001 - raised in the test's thread by __exit__
            self.error = error

    def _storm(self) -> None:
        while not self._stop.wait(self.rng.uniform(0.6, 1.4)):  # the storm's pace, not a wait for anything
            workers = self.server.worker_pids()
            holding = [pid for pid in self.database.invite_holders().values() if pid in workers]
            victim = self.rng.choice(holding or workers)
            try:
                self.server.signal_worker(victim, signal.SIGKILL)
            except (GunicornHarnessError, ProcessLookupError):
                continue
            self.kills += 1
            self.mid_invite += bool(holding)
            self.server.wait_for_workers(2, exclude=[victim], timeout=30)


def pay_through_the_storm(emulator, user_id: int, start_after: float) -> float:
    """/plans, the plan's button, the payment: when Telegram had the payment acknowledged (wall clock).

    A reply riding on a webhook answer is lost when its worker dies, so the
    payer asks again, as a person would.
    """
    threading.Event().wait(start_after)  # the load's pacing: when this payer turns up
    user = emulator.user(user_id, f"Payer{user_id}", has_started_bot=True)
    for _ in range(5):
        since = emulator.next_call_index
        emulator.send_message(user, "/plans")
        menus = [call for call in emulator.calls("sendMessage", since=since)
                 if call.ok and call.params["chat_id"] == user_id and "buy:month" in str(call.params)]
        if menus:
            break
    else:
        raise AssertionError(f"user {user_id} never got the plans")
    since = emulator.next_call_index
    emulator.press_button(user, menus[0], "buy:month")
    invoice = emulator.wait_for_call("sendInvoice", lambda call: call.ok and call.params["chat_id"] == user_id,
                                     since=since, timeout=60)
    paid = emulator.pay_invoice(user, invoice)
    assert paid.ok and paid.delivery.delivered, f"user {user_id}: {paid.reason}"
    return paid.delivery.acknowledged_at


def test_after_a_storm_of_killed_workers_every_payer_is_invited_within_10s(pg_database_url):
    payers = list(range(3300, 3310))
    database = Database(pg_database_url)
    emulator = BotApiEmulator(token=BOT_TOKEN, channel_id=CHANNEL_ID, implicit_users=True,
                              retry_delays=(0.1, 0.2, 0.4, 0.8, 1.0), max_attempts=90, timeout=5)
    emulator.start()
    try:
        emulator.set_latency("createChatInviteLink", 0.5)  # invites in flight when their worker dies
        with running_server(pg_database_url, emulator) as server:
            with KillStorm(server, database) as storm, ThreadPoolExecutor(max_workers=len(payers)) as pool:
                # One payer starts every PAYER_GAP seconds (the load's pacing), so the storm falls on all of them.
                acknowledged = list(pool.map(lambda n: pay_through_the_storm(emulator, payers[n], n * PAYER_GAP),
                                             range(len(payers))))
            last_ack = max(acknowledged)
            wait_until(lambda: all(invite_messages(emulator)[user] for user in payers), timeout=60,
                       interval=0.05, message="every payer's invite")
            sent = invite_messages(emulator)
            delays = {user: sent[user][0].time - last_ack for user in payers}
            tracked = dict(database.rows("SELECT user_id, link FROM invites WHERE link IS NOT NULL"))
        links = [call for call in emulator.calls("createChatInviteLink") if call.ok]
        worst = max(delays.values())
        print(f"\n{storm.kills} workers SIGKILLed ({storm.mid_invite} inside an invite job); {len(payers)} payers; "
              f"last invite {worst:+.2f}s after the last payment's acknowledgement; "
              f"invite messages {sum(len(calls) for calls in sent.values())}, links created {len(links)}")
        assert storm.kills >= 3, "the storm did not happen"
        assert worst <= INVITED_WITHIN, {user: round(delay, 2) for user, delay in delays.items()}
        for user in payers:
            # Resent at most, never a second link: the one sent is the one the database tracks.
            assert {link_in(call) for call in sent[user]} == {tracked[user]}, user
    finally:
        emulator.stop()
        database.close()
