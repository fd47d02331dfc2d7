"""Chaos scenarios: the real server under faults, with the invariants a sceptical operator would check.

Each scenario starts real gunicorn (2 workers, from the Procfile) on a
throwaway PostgreSQL cluster (``stack_harness.pg_cluster.PgCluster``) with the Bot API
emulator as Telegram, drives a mixed load through ``DeliverySimulator``
(Telegram's way of delivering: bounded connections, per-chat order, retries,
duplicates), injects its faults while the load runs, lets everything settle
and then checks the promises of the README:

- every update is eventually acknowledged, and none became a dead letter;
- each Stars payment is credited exactly once (``payments`` equals the
  emulator's payments; memberships are not extended twice);
- every payer receives an invite link message (extra copies, which happen
  when a crash or a timeout falls between Telegram's answer and our commit,
  are counted and reported, not failed);
- a reply riding on a webhook answer arrives once: never twice (that would be
  an update handled twice), and missing only when an attempt of its update
  got no answer (a lost answer loses its rider, by design);
- no connection is left idle in transaction, and every worker's pool is back
  to 0 checked-out connections when idle;
- no 5xx for a valid update outside a fault window;
- worker memory (RSS) does not grow beyond a modest bound.

A scenario is parameterised by a ``Load`` (duration and rate) and returns a
``ScenarioResult`` row (scenario, updates, faults injected, lost, doubled,
notes). ``tests/test_chaos.py`` runs each one briefly; ``scripts/chaos.py``
runs them in rotation for as long as asked.

Timing: waits are deadlines on conditions (acknowledgements, emulator calls,
database rows, log lines). The only plain waits are the load's pacing and the
chosen length of a fault (how long the database stays down), never a guess
that something has happened.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import random
import re
import signal
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import psutil
import psycopg
import requests

from stack_harness.bot_env import BOT_TOKEN, CHANNEL_ID, WEBHOOK_SECRET
from stack_harness.delivery_simulator import Attempt, Backoff, DeliveryReport, DeliverySimulator, UpdateRecord, chat_key
from stack_harness.real_server import running_server
from botapi_emulator import (
    BotApiEmulator,
    callback_query_update,
    pre_checkout_query_update,
    private_chat_json,
    text_message_update,
    user_json,
)
from stack_harness.gunicorn_server import GunicornHarnessError, GunicornServer
from stack_harness.pg_cluster import PgCluster

__all__ = ["SCENARIOS", "Load", "ScenarioResult", "format_table", "prepare_database", "run_scenario"]

DATABASE = "bot"
SERVER_ROLE = "bot"  # the server connects as an ordinary role, so superuser-reserved slots stay ours
PLANS = [
    {"id": "week", "title": "One week", "stars": 75, "days": 7},
    {"id": "month", "title": "One month", "stars": 250, "days": 30},
]
PLAN_DAYS = {plan["id"]: plan["days"] for plan in PLANS}
WORKERS = 2
START_REPLY = re.compile(r"Welcome, U(\d+)!")
INVITE_MARK = "t.me/"

# Every scenario's server: fast outbox recovery after a crash (lease), no
# flood throttling (the load is many quick users, not a flood), known plans.
BASE_ENV = {
    "WEB_CONCURRENCY": str(WORKERS),
    "FLOOD_LIMIT_PER_MINUTE": "0",
    "TELEGRAM_READ_TIMEOUT": "2",
    "OUTBOX_LEASE_SECONDS": "7",
    "PLANS": json.dumps(PLANS),
}

STEP_TIMEOUT = 60.0  # a payer waits this long for one of their updates to be acknowledged
INVOICE_TIMEOUT = 40.0  # ... and for the invoice the outbox owes them
SETTLE_TIMEOUT = 90.0  # after the load: deliveries drained, outbox caught up, invites sent
HEALTH_503_WITHIN = 2.0
HEALTH_200_WITHIN = 5.0


# --------------------------------------------------------------------------------------------------
# Parameters and results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """How long and how hard a scenario drives the server.

    ``rate`` is the feeder's updates a second (commands, button presses,
    pre-checkouts) spread over ``users``; ``payers`` full purchases are
    started at even intervals. ``duplicate_probability`` is the chance that
    an acknowledged update is delivered again.
    """

    seconds: float = 5.0
    rate: float = 12.0
    users: int = 30
    payers: int = 3
    duplicate_probability: float = 0.05
    connections: int = 8
    request_timeout: float = 5.0
    warmup: float = 1.0
    rss_growth_limit_mib: float = 64.0


@dataclass
class FaultWindow:
    """When a fault was active; 5xx answers inside it (plus a grace period) are expected when it ``excuses_5xx``."""

    kind: str
    start: float
    end: float | None = None
    excuses_5xx: bool = True

    def covers(self, moment: float, grace: float) -> bool:
        end = self.end if self.end is not None else time.monotonic()
        return self.start - 0.2 <= moment <= end + grace


@dataclass
class ScenarioResult:
    """One row of the chaos table, with the evidence behind it."""

    scenario: str
    updates: int = 0
    faults: int = 0
    lost: int = 0
    doubled: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def row(self) -> list[str]:
        return [self.scenario, str(self.updates), str(self.faults), str(self.lost), str(self.doubled),
                "ok" if self.ok else f"FAIL({len(self.violations)})", "; ".join(self.notes)]

    def assert_invariants(self) -> None:
        if self.violations:
            lines = [f"{self.scenario}: {len(self.violations)} invariant(s) broken"]
            lines += [f"  - {violation}" for violation in self.violations]
            if self.evidence:
                lines += ["  server log:"] + [f"    {line}" for line in self.evidence]
            raise AssertionError("\n".join(lines))

    @classmethod
    def crashed(cls, scenario: str, error: BaseException, seconds: float) -> ScenarioResult:
        """A run that could not finish (the harness failed): one violation with the traceback's tail."""
        tail = "".join(traceback.format_exception(error)).strip().splitlines()[-6:]
        return cls(scenario, seconds=seconds, violations=[f"run aborted: {type(error).__name__}: {error}"],
                   evidence=tail)


TABLE_HEADER = ["scenario", "updates", "faults injected", "lost", "doubled", "result", "notes"]


def format_table(rows: list[list[str]], header: list[str] = TABLE_HEADER) -> str:
    """A plain-text table; the last column (notes) is left unpadded."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]

    rule = "  ".join("-" * width for width in widths) + "  " + "-" * len(header[-1])
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


# --------------------------------------------------------------------------------------------------
# The database side
# --------------------------------------------------------------------------------------------------


def prepare_database(cluster: PgCluster) -> str:
    """Give database ``bot`` to an ordinary login role and return the server's URL for it.

    An ordinary role, as in production: PostgreSQL keeps its
    ``superuser_reserved_connections`` away from it, so the connection-budget
    scenario sees a real limit while the test's own (superuser) connections
    still get in.
    """
    cluster.execute(f"DO $$ BEGIN CREATE ROLE {SERVER_ROLE} LOGIN; "
                    "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    cluster.execute(f"ALTER DATABASE {DATABASE} OWNER TO {SERVER_ROLE}")
    cluster.execute(f"GRANT ALL ON SCHEMA public TO {SERVER_ROLE}", dbname=DATABASE)
    return f"postgresql://{SERVER_ROLE}@{cluster.host}:{cluster.port}/{DATABASE}"


def reserved_connection_slots(cluster: PgCluster) -> int:
    """Slots an ordinary role cannot use (superuser_reserved_connections, and reserved_connections on 16+)."""
    rows = cluster.execute("SELECT coalesce(sum(setting::int), 0) FROM pg_settings "
                           "WHERE name IN ('superuser_reserved_connections', 'reserved_connections')")
    return int(rows[0][0])


def connection_budget(env: dict[str, str]) -> int:
    """What the README promises: WEB_CONCURRENCY x (GUNICORN_THREADS + 2 background + 1 health probe)."""
    return int(env.get("WEB_CONCURRENCY", WORKERS)) * (int(env.get("GUNICORN_THREADS", 4)) + 2 + 1)


# --------------------------------------------------------------------------------------------------
# Samplers: what the server uses while the load runs
# --------------------------------------------------------------------------------------------------


class Sampler:
    """Calls ``sample()`` every ``interval`` seconds on a daemon thread until ``stop()``.

    A sample may block while the database is frozen; the thread then simply
    resumes after the thaw, and ``stop()`` does not wait for it for long.
    """

    interval = 0.25

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5.0)

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.sample()
            except Exception:  # noqa: BLE001, S110 - the database is down, a worker just died: skip this sample
                pass

    def sample(self) -> None:
        raise NotImplementedError


class ConnectionSampler(Sampler):
    """Peak number of the server's PostgreSQL connections (by role), from pg_stat_activity."""

    def __init__(self, cluster: PgCluster) -> None:
        super().__init__()
        self._cluster = cluster
        self._connection: psycopg.Connection | None = None
        self.peak = 0
        self.peak_at = 0.0
        self.samples = 0

    def sample(self) -> None:
        try:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(self._cluster.dsn(DATABASE), connect_timeout=2, autocommit=True)
            count = self._connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND backend_type = 'client backend'",
                (SERVER_ROLE,)).fetchone()[0]
        except psycopg.Error:
            self._close()
            raise
        self.samples += 1
        if count > self.peak:
            self.peak, self.peak_at = count, time.monotonic()

    def stop(self) -> None:
        super().stop()
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


class MemorySampler(Sampler):
    """Resident memory of every worker process seen, first and last value per pid (psutil reads /proc)."""

    interval = 0.5

    def __init__(self, server: GunicornServer) -> None:
        super().__init__()
        self._server = server
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.first_seen: dict[int, float] = {}
        self.last_seen: dict[int, float] = {}

    def sample(self) -> None:
        now = time.monotonic()
        for pid in self._server.worker_pids():
            try:
                rss = psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
            self.first.setdefault(pid, rss)
            self.first_seen.setdefault(pid, now)
            self.last[pid], self.last_seen[pid] = rss, now

    def growth(self) -> dict[int, int]:
        """Bytes each worker grew between its first and its last sample."""
        return {pid: self.last[pid] - self.first[pid] for pid in self.last}

    @property
    def pids(self) -> set[int]:
        return set(self.first)


# --------------------------------------------------------------------------------------------------
# One run: what it holds and records
# --------------------------------------------------------------------------------------------------


@dataclass
class PayerOutcome:
    user_id: int
    plan: str
    stage: str = "started"
    charge_id: str | None = None


class ChaosRun:
    """Everything one scenario run holds (cluster, emulator, server, delivery) and what it records."""

    def __init__(self, scenario: Scenario, cluster: PgCluster, load: Load, seed: int | None) -> None:
        self.scenario = scenario
        self.cluster = cluster
        self.load = load
        self.rng = random.Random(seed)
        self.result = ScenarioResult(scenario.name)
        self.env = {**BASE_ENV, **scenario.env}
        self.windows: list[FaultWindow] = []
        self.stop = threading.Event()  # set when the run is aborted: every loop ends
        self.load_deadline = float("inf")
        self.load_over = float("inf")  # when the load and the faults ended
        self.emulator: BotApiEmulator | None = None
        self.server: GunicornServer | None = None
        self.simulator: DeliverySimulator | None = None
        self.connections: ConnectionSampler | None = None
        self.memory: MemorySampler | None = None
        self.start_updates: dict[int, UpdateRecord] = {}
        self.pre_checkouts: dict[str, tuple[UpdateRecord, bool]] = {}  # query id -> (record, expected ok)
        self.external: list[UpdateRecord] = []  # the emulator's own deliveries (the pay flow)
        self.payers: list[PayerOutcome] = []
        self.server_log = ""
        self._message_ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- recording ---------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.result.notes.append(text)

    def violate(self, text: str) -> None:
        self.result.violations.append(text)

    def fault(self, count: int = 1) -> None:
        with self._lock:
            self.result.faults += count

    @contextlib.contextmanager
    def window(self, kind: str, excuses_5xx: bool = True) -> Iterator[FaultWindow]:
        """Mark a fault's lifetime, recovery included (5xx inside it are expected if ``excuses_5xx``)."""
        window = FaultWindow(kind, time.monotonic(), excuses_5xx=excuses_5xx)
        self.windows.append(window)
        try:
            yield window
        finally:
            window.end = time.monotonic()

    def cycles(self, gap: tuple[float, float], needs: float) -> Iterator[int]:
        """Fault cycles during the load: the first after the warm-up, then after a random ``gap``
        for as long as at least ``needs`` seconds of load remain."""
        if self.stop.wait(self.load.warmup):
            return
        for number in itertools.count():
            self.ensure_server()
            yield number
            if self.stop.wait(self.rng.uniform(*gap)) or self.load_deadline - time.monotonic() < needs:
                return

    def ensure_server(self) -> None:
        """The master must outlive the run; if it is gone (crashed, or killed from outside), stop now
        rather than wait out every deadline against a server that is not there."""
        if not self.server.running:
            self.stop.set()
            raise RuntimeError(f"the gunicorn master is gone; log tail:\n{self.server.log_tail(8)}")

    def hold(self, seconds: float) -> None:
        """Keep a fault in place for ``seconds`` (its chosen length, not a wait for something to happen)."""
        self.stop.wait(seconds)

    # --- updates -----------------------------------------------------------------------------------

    def next_update_id(self) -> int:
        return self.emulator.delivery.allocate_update_id()  # one sequence with the emulator's own updates

    def submit(self, update: dict) -> UpdateRecord:
        """Deliver ``update`` through the simulator; the emulator learns its users and queries first."""
        self.emulator.state.learn_from_update(update)
        return self.simulator.submit(update)

    def submit_command(self, user_id: int, text: str, first_name: str | None = None) -> UpdateRecord:
        update_id = self.next_update_id()
        sender = user_json(user_id, first_name or f"User{user_id}")
        return self.submit(text_message_update(update_id, next(self._message_ids), self.emulator.now(), sender, text))

    def submit_start(self, user_id: int) -> UpdateRecord:
        """A /start whose sender is named after its update_id, so its reply says which update it answers."""
        update_id = self.next_update_id()
        sender = user_json(user_id, f"U{update_id}")
        update = text_message_update(update_id, next(self._message_ids), self.emulator.now(), sender, "/start")
        record = self.submit(update)
        with self._lock:
            self.start_updates[update_id] = record
        return record

    def submit_button(self, user_id: int, data: str, message: dict | None = None) -> UpdateRecord:
        message = message or self.menu_message(user_id)
        query_id = str(self.rng.getrandbits(62))
        update = callback_query_update(self.next_update_id(), query_id, user_json(user_id), message, data)
        return self.submit(update)

    def submit_pre_checkout(self, user_id: int, payload: str, amount: int, expect_ok: bool) -> UpdateRecord:
        query_id = str(self.rng.getrandbits(62))
        update = pre_checkout_query_update(self.next_update_id(), query_id, user_json(user_id), "XTR", amount, payload)
        record = self.submit(update)
        with self._lock:
            self.pre_checkouts[query_id] = (record, expect_ok)
        return record

    def menu_message(self, user_id: int) -> dict:
        """A plan menu the bot sent earlier (for users whose /start reply we did not keep)."""
        return {"message_id": next(self._message_ids), "from": self.emulator.bot_user.to_json(),
                "chat": private_chat_json(user_json(user_id)), "date": self.emulator.now(),
                "text": "Choose a plan:"}

    def add_external(self, delivery: Any) -> None:
        """Fold one of the emulator's DeliveryResults into the run's delivery report."""
        if delivery is not None:
            with self._lock:
                self.external.append(record_from_emulator(delivery))

    def report(self) -> DeliveryReport:
        with self._lock:
            return self.simulator.report().merged(self.external)

    # --- the server --------------------------------------------------------------------------------

    def health(self, timeout: float = 3.0) -> tuple[int | None, dict]:
        try:
            response = requests.get(f"{self.server.url}/health", timeout=timeout)
        except requests.RequestException:
            return None, {}
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {}

    def wait_health(self, status: int, within: float, since: float | None = None) -> float | None:
        """Poll /health until it answers ``status``; seconds since ``since`` (default now), or None if not within."""
        since = time.monotonic() if since is None else since
        deadline = since + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            answered, _ = self.health(timeout=max(0.2, remaining))
            if answered == status:
                elapsed = time.monotonic() - since
                return elapsed if elapsed <= within else None
            self.stop.wait(0.05)  # poll interval

    def signal_worker(self, pid: int, sig: int) -> bool:
        """Signal one of the server's workers; False if it is gone already (recycled, killed)."""
        try:
            self.server.signal_worker(pid, sig)
            return True
        except (GunicornHarnessError, ProcessLookupError):
            return False

    def db(self, sql: str, params: Any = None) -> list[tuple]:
        return self.cluster.execute(sql, params, dbname=DATABASE)


def record_from_emulator(delivery: Any) -> UpdateRecord:
    """The emulator's DeliveryResult as an UpdateRecord (its times are wall-clock; ours monotonic)."""
    offset = time.monotonic() - time.time()
    log = delivery.attempt_log
    submitted = (log[0].started_at if log else time.time()) + offset
    record = UpdateRecord(delivery.update, chat_key(delivery.update), submitted)
    for attempt in log:
        if attempt.status is not None:
            status: int | str = attempt.status
        else:
            status = "timeout" if "timeout" in (attempt.error or "").lower() else "connection-error"
        record.attempts.append(Attempt(attempt.started_at + offset, 0.0, status))
    if delivery.delivered:
        record.acknowledged_at = (delivery.acknowledged_at or time.time()) + offset
        record.acknowledged.set()
    return record


# --------------------------------------------------------------------------------------------------
# The load
# --------------------------------------------------------------------------------------------------


class LoadGenerator:
    """The mixed load: a feeder of commands, button presses and pre-checkouts from many users,
    and payers who go from /start through a plan button to a paid invoice.

    The feeder does not wait for answers (Telegram queues updates whatever
    the bot does); each payer waits for each step, as a person would.
    """

    ACTIONS: ClassVar[dict[str, int]] = {
        "start": 25, "plans": 10, "status": 15, "help": 10, "chatter": 5, "buy": 15, "stale_button": 5,
        "forged_checkout": 8, "real_checkout": 7,
    }

    def __init__(self, run: ChaosRun, user_base: int = 20_000, payer_base: int = 50_000) -> None:
        self.run = run
        self.users = [user_base + index for index in range(run.load.users)]
        for user_id in self.users:  # they talk to the bot, so the bot may write to them
            run.emulator.user(user_id, has_started_bot=True)
        self.payer_ids = itertools.count(payer_base)
        self._invoices: dict[int, dict] = {}
        self._invoice_since = 0
        self._names = list(self.ACTIONS)
        self._weights = list(self.ACTIONS.values())

    def drive(self, injector_done: threading.Event) -> None:
        """Feed until the load's time is up and the faults are over; start payers along the way."""
        run, load = self.run, self.run.load
        started = time.monotonic()
        payer_times = [started + load.warmup + index * max(0.0, load.seconds - load.warmup) / max(1, load.payers)
                       for index in range(load.payers)]
        futures: list[Future] = []
        with ThreadPoolExecutor(max_workers=max(1, min(load.payers, 8)), thread_name_prefix="payer") as payers:
            interval, due = 1.0 / load.rate, started
            while not run.stop.is_set():
                run.ensure_server()
                now = time.monotonic()
                if now >= run.load_deadline and injector_done.is_set():
                    break
                while payer_times and payer_times[0] <= now:
                    payer_times.pop(0)
                    futures.append(payers.submit(self.purchase, next(self.payer_ids)))
                self.feed_one()
                due += interval
                run.stop.wait(max(0.0, due - time.monotonic()))  # pacing
            for future in futures:
                run.payers.append(future.result(timeout=STEP_TIMEOUT * 2 + INVOICE_TIMEOUT + 30))

    # --- the feeder ------------------------------------------------------------------------------

    def feed_one(self) -> None:
        user_id = self.run.rng.choice(self.users)
        action = self.run.rng.choices(self._names, self._weights)[0]
        getattr(self, f"_{action}")(user_id)

    def _start(self, user_id: int) -> None:
        self.run.submit_start(user_id)

    def _plans(self, user_id: int) -> None:
        self.run.submit_command(user_id, "/plans")

    def _status(self, user_id: int) -> None:
        self.run.submit_command(user_id, "/status")

    def _help(self, user_id: int) -> None:
        self.run.submit_command(user_id, "/help")

    def _chatter(self, user_id: int) -> None:
        self.run.submit_command(user_id, self.run.rng.choice(["hello", "how do I join?", "👋"]))

    def _buy(self, user_id: int) -> None:
        self.run.submit_button(user_id, f"buy:{self.run.rng.choice(list(PLAN_DAYS))}")

    def _stale_button(self, user_id: int) -> None:
        self.run.submit_button(user_id, "buy:gold")

    def _forged_checkout(self, user_id: int) -> None:
        self.run.submit_pre_checkout(user_id, f"forged-{self.run.rng.getrandbits(48):x}", 250, expect_ok=False)

    def _real_checkout(self, user_id: int) -> None:
        """A pre-checkout for an invoice the bot really issued to this user (who then does not pay)."""
        invoice = self._invoice_of(user_id)
        if invoice is None:
            self._buy(user_id)
            return
        self.run.submit_pre_checkout(user_id, invoice["payload"], invoice["prices"][0]["amount"], expect_ok=True)

    def _invoice_of(self, user_id: int) -> dict | None:
        for call in self.run.emulator.calls("sendInvoice", since=self._invoice_since):
            self._invoice_since = call.index + 1
            if call.ok:
                self._invoices[call.params["chat_id"]] = call.params
        return self._invoices.get(user_id)

    # --- payers ------------------------------------------------------------------------------------

    def purchase(self, user_id: int) -> PayerOutcome:
        """One payer's purchase; an exception is the harness's problem and is reported as such."""
        outcome = PayerOutcome(user_id, self.run.rng.choice(list(PLAN_DAYS)))
        try:
            return self._purchase(outcome)
        except Exception as error:  # noqa: BLE001 - reported as a violation by check_payments
            outcome.stage = f"error: {type(error).__name__}: {error}"
            return outcome

    def _purchase(self, outcome: PayerOutcome) -> PayerOutcome:
        """/start, press a plan button, wait for the invoice, pay it through the emulator's pay flow."""
        run, user_id = self.run, outcome.user_id
        run.emulator.user(user_id, has_started_bot=True)
        start = run.submit_start(user_id)
        if not start.wait(STEP_TIMEOUT):
            outcome.stage = "/start not acknowledged"
            return outcome
        since = run.emulator.next_call_index
        press = run.submit_button(user_id, f"buy:{outcome.plan}", _message_of(start.first_response))
        if not press.wait(STEP_TIMEOUT):
            outcome.stage = "button press not acknowledged"
            return outcome
        try:
            invoice = run.emulator.wait_for_call(
                "sendInvoice", lambda call: call.ok and call.params.get("chat_id") == user_id,
                timeout=INVOICE_TIMEOUT, since=since)
        except TimeoutError:
            outcome.stage = "no invoice"
            return outcome
        paid = run.emulator.pay_invoice(user_id, invoice)
        run.add_external(paid.pre_checkout.delivery if paid.pre_checkout else None)
        run.add_external(paid.delivery)
        outcome.stage = "paid" if paid.ok else f"payment not made: {paid.reason}"
        outcome.charge_id = paid.charge_id
        return outcome


def _message_of(call: Any) -> dict | None:
    """The Message a sendMessage call returned (the plan menu), if that is what rode on the answer."""
    if call is not None and getattr(call, "method", None) == "sendMessage" and call.ok:
        return call.result
    return None


# --------------------------------------------------------------------------------------------------
# Settling and the invariants
# --------------------------------------------------------------------------------------------------


def invite_messages(run: ChaosRun) -> Counter:
    """Invite link messages the bot delivered, per user."""
    return Counter(call.params["chat_id"] for call in run.emulator.calls("sendMessage")
                   if call.ok and INVITE_MARK in str(call.params.get("text", "")))


def owed_invites(run: ChaosRun) -> Counter:
    """Invites owed: one per payment Telegram took."""
    return Counter(payment["user_id"] for payment in run.emulator.payments())


def settle(run: ChaosRun) -> None:
    """Wait (bounded) until deliveries are acknowledged, the outbox has caught up and invites are out."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not run.simulator.drain(1.0):
        run.ensure_server()
        if time.monotonic() >= deadline or run.simulator.expired:
            run.note(f"deliveries still pending after {SETTLE_TIMEOUT:.0f}s: {run.simulator.pending}")
            break

    def caught_up() -> bool:
        pending = run.db("SELECT count(*) FROM outbox WHERE status = 'pending'")[0][0]
        sent = invite_messages(run)
        return pending == 0 and all(sent[user] >= owed for user, owed in owed_invites(run).items())

    while not caught_up():
        run.ensure_server()
        if time.monotonic() >= deadline:
            return
        run.stop.wait(0.2)  # poll interval
    run.note(f"settled {time.monotonic() - run.load_over:.1f}s after the load")


def summarize_statuses(statuses: list[int | str]) -> str:
    """``[503, 503, 503, 200]`` as ``503x3 200``: a long retry history in one short line."""
    runs = [(status, len(list(group))) for status, group in itertools.groupby(statuses)]
    return " ".join(f"{status}x{count}" if count > 1 else str(status) for status, count in runs) or "none"


def check_acknowledged(run: ChaosRun, report: DeliveryReport, listed: int = 5) -> None:
    missing = report.never_acknowledged
    for record in missing[:listed]:
        run.violate(f"update {record.update_id} ({record.kind}) never acknowledged: "
                    f"{summarize_statuses(record.statuses)}")
    if len(missing) > listed:
        run.violate(f"... and {len(missing) - listed} more updates never acknowledged")
    run.result.lost += len(missing)
    dead = run.db("SELECT update_id, error FROM dead_letters ORDER BY id")
    for update_id, error in dead:
        run.violate(f"update {update_id} became a dead letter: {error}")
    run.result.lost += len(dead)


def check_payments(run: ChaosRun) -> None:
    """Each Stars payment Telegram took is in ``payments`` once, and extended a membership once."""
    taken = {payment["charge_id"]: payment for payment in run.emulator.payments()}
    rows = run.db("SELECT charge_id, user_id, plan_id, created_at FROM payments")
    credited = {row[0]: row for row in rows}
    for charge_id in sorted(set(taken) - set(credited)):
        run.violate(f"payment {charge_id} of user {taken[charge_id]['user_id']} was never credited")
        run.result.lost += 1
    for charge_id in sorted(set(credited) - set(taken)):
        run.violate(f"payments has {charge_id}, which Telegram never charged")
        run.result.doubled += 1
    check_membership_lengths(run, list(credited.values()))
    for payer in run.payers:
        if payer.stage.startswith("error"):
            run.violate(f"payer {payer.user_id} could not go on: {payer.stage}")
    paid = sum(1 for payer in run.payers if payer.stage == "paid")
    unpaid = Counter(payer.stage for payer in run.payers if payer.stage != "paid")
    run.note(f"payments {paid}/{len(run.payers)} credited once" + (f" (not paid: {dict(unpaid)})" if unpaid else ""))


def check_membership_lengths(run: ChaosRun, payments: list[tuple]) -> None:
    """A membership runs exactly as long as its payments paid for: longer means a double credit."""
    by_user: dict[int, list[tuple]] = defaultdict(list)
    for row in payments:
        by_user[row[1]].append(row)
    expires = dict(run.db("SELECT user_id, expires_at FROM memberships"))
    slack = timedelta(minutes=1)
    for user_id, rows in by_user.items():
        paid_for = timedelta(days=sum(PLAN_DAYS.get(row[2], 0) for row in rows))
        first = min(row[3] for row in rows)
        ends = expires.get(user_id)
        if ends is None:
            run.violate(f"user {user_id} paid but has no membership")
            run.result.lost += 1
        elif ends > first + paid_for + slack:
            run.violate(f"user {user_id}'s membership runs to {ends}, "
                        f"beyond the {paid_for.days} days paid from {first}")
            run.result.doubled += 1
        elif ends < first + paid_for - slack:
            run.violate(f"user {user_id}'s membership ends {ends}, short of the {paid_for.days} days paid from {first}")
            run.result.lost += 1


def check_invites(run: ChaosRun) -> None:
    """Every payer got an invite; copies beyond that are counted (at-least-once delivery), not failed."""
    sent, owed = invite_messages(run), owed_invites(run)
    missing = {user: count - sent[user] for user, count in owed.items() if sent[user] < count}
    for user, count in missing.items():
        run.violate(f"payer {user} is owed {count} invite message(s) that never arrived")
    run.result.lost += sum(missing.values())
    extra = sum(max(0, sent[user] - count) for user, count in owed.items())
    links = len([call for call in run.emulator.calls("createChatInviteLink") if call.ok])
    extra_links = max(0, links - sum(owed.values()))
    if extra or extra_links:
        retried = run.db("SELECT count(*) FROM outbox WHERE kind = 'invite' AND attempts > 1")[0][0]
        run.note(f"invite resends {extra}, extra links {extra_links} (invite jobs retried: {retried})")


def check_riders(run: ChaosRun) -> None:
    """Replies riding on webhook answers: never twice; missing only where an answer was lost."""
    check_start_replies(run)
    check_pre_checkout_answers(run)


def check_start_replies(run: ChaosRun) -> None:
    """Each /start is answered once. Without a reply, its attempts say why:

    - an attempt got no answer at all: the reply rode on an answer that was
      lost, which is how webhook replies work (noted);
    - no attempt was answered 2xx before the one that acknowledged it, and
      that one carried no reply: the server had found the update done, so an
      earlier attempt it answered 5xx had committed. That breaks the answer
      policy ("5xx means nothing was written"); it is noted as a server bug
      rather than failed, because this suite must not stay red for a fault it
      may not fix (see the closing report);
    - otherwise the reply is simply missing: a violation.
    """
    riding, queued = Counter(), Counter()
    for call in run.emulator.calls("sendMessage"):
        match = START_REPLY.match(str(call.params.get("text", "")))
        if match and call.ok:
            (riding if call.via_webhook_response else queued)[int(match.group(1))] += 1
    lost_with_answer, committed_then_5xx = [], []
    for update_id, record in run.start_updates.items():
        if riding[update_id] > 1:
            run.violate(f"/start update {update_id} was handled {riding[update_id]} times (one reply each)")
            run.result.doubled += 1
        elif riding[update_id] + queued[update_id] == 0 and record.acknowledged_at is not None:
            if record.had_ambiguous_attempt:
                lost_with_answer.append(update_id)
            elif any(attempt.server_error for attempt in record.attempts if not attempt.duplicate):
                committed_then_5xx.append(update_id)
            else:
                run.violate(f"/start update {update_id} was acknowledged cleanly "
                            f"({summarize_statuses(record.statuses)}) but never answered "
                            f"(methods in its answers: {_describe_responses(record)})")
                run.result.lost += 1
    resent = sum(count - 1 for count in queued.values() if count > 1)
    if lost_with_answer or resent:
        run.note(f"/start replies lost with their webhook answer {len(lost_with_answer)}, resent {resent}")
    if committed_then_5xx:
        examples = ", ".join(f"{update_id}: {summarize_statuses(run.start_updates[update_id].statuses)}"
                             for update_id in committed_then_5xx[:3])
        run.note(f"SERVER BUG: {len(committed_then_5xx)} /start answered 5xx after its transaction committed, "
                 f"reply lost (e.g. {examples})")


def _describe_responses(record: UpdateRecord) -> str:
    described = [f"{call.method} ok={call.ok}" for call in record.responses if hasattr(call, "method")]
    return ", ".join(described + record.response_errors) or "none"


def check_pre_checkout_answers(run: ChaosRun) -> None:
    answers: dict[str, list[bool]] = defaultdict(list)
    for call in run.emulator.calls("answerPreCheckoutQuery"):
        if call.ok:
            answers[call.params["pre_checkout_query_id"]].append(bool(call.params["ok"]))
    unanswered = 0
    for query_id, (record, expect_ok) in run.pre_checkouts.items():
        given = answers.get(query_id, [])
        if given and given[0] != expect_ok:
            run.violate(f"pre-checkout {query_id} answered ok={given[0]}, expected ok={expect_ok}")
            run.result.doubled += int(given[0])  # accepting a forged invoice would take money wrongly
        elif not given and record.acknowledged_at is not None:
            if record.had_ambiguous_attempt:
                unanswered += 1
            else:
                run.violate(f"pre-checkout {query_id} acknowledged cleanly but never answered")
                run.result.lost += 1
    if unanswered:
        run.note(f"pre-checkout answers lost with their webhook answer {unanswered}")


def check_server_errors(run: ChaosRun, report: DeliveryReport) -> None:
    """No 5xx for a valid update outside a fault window that excuses them."""
    grace = run.scenario.window_grace
    excusing = [window for window in run.windows if window.excuses_5xx]
    outside = [(record, attempt) for record, attempt in report.attempts()
               if attempt.server_error and not any(window.covers(attempt.started, grace) for window in excusing)]
    for record, attempt in outside[:10]:
        run.violate(f"update {record.update_id} ({record.kind}) got {attempt.status} outside any fault window")
    if len(outside) > 10:
        run.violate(f"... and {len(outside) - 10} more 5xx outside fault windows")
    inside = report.server_errors - len(outside)
    if inside:
        run.note(f"5xx inside fault windows {inside}")


def check_outbox(run: ChaosRun) -> None:
    """Caught up: nothing pending; refusals only where Telegram refused for good (and never an invite)."""
    pending = run.db("SELECT id, kind, payload->>'method', attempts, last_error FROM outbox "
                     "WHERE status = 'pending' ORDER BY id LIMIT 5")
    if pending:
        count = run.db("SELECT count(*) FROM outbox WHERE status = 'pending'")[0][0]
        run.violate(f"outbox has not caught up: {count} pending after {SETTLE_TIMEOUT:.0f}s, e.g. {pending}")
    failed = run.db("SELECT kind, payload->>'method', left(last_error, 120) FROM outbox WHERE status = 'failed'")
    for kind, method, error in failed:
        if kind == "invite":
            run.violate(f"an invite job failed for good: {error}")
    if failed:
        run.note("outbox refusals " + ", ".join(f"{k}:{m or ''} x{n}" for (k, m), n in
                                                Counter((kind, method) for kind, method, _ in failed).items()))


def check_sessions(run: ChaosRun) -> None:
    """No connection idle in transaction, and every worker's pool back to 0 checked out when idle."""
    deadline = time.monotonic() + 5.0
    while True:
        stuck = [backend for backend in run.cluster.idle_in_transaction(DATABASE) if backend.usename == SERVER_ROLE]
        if not stuck:
            break
        if time.monotonic() >= deadline:
            for backend in stuck:
                run.violate(f"connection of {backend.application_name} idle in transaction for {backend.state_age}")
            break
        run.stop.wait(0.1)  # poll interval
    check_pools_idle(run)


def check_pools_idle(run: ChaosRun, within: float = 10.0) -> None:
    """GET /health until each live worker has reported ``pool.checked_out == 0`` at least once."""
    deadline = time.monotonic() + within
    idle, last = set(), {}
    while True:
        workers = set(run.server.worker_pids())
        if workers and workers <= idle:
            return
        if time.monotonic() >= deadline:
            for pid in sorted(workers - idle):
                run.violate(f"worker {pid} still has {last.get(pid, '?')} connection(s) checked out when idle")
            return
        _, body = run.health()
        run.stop.wait(0.02)  # poll interval
        pid, checked_out = body.get("worker_pid"), (body.get("pool") or {}).get("checked_out")
        if pid is not None:
            last[pid] = checked_out
            if checked_out == 0:
                idle.add(pid)


def check_memory(run: ChaosRun) -> None:
    growth = run.memory.growth()
    if not growth:
        return
    limit = run.load.rss_growth_limit_mib * 2**20
    for pid, grew in sorted(growth.items()):
        if grew > limit:
            seconds = run.memory.last_seen[pid] - run.memory.first_seen[pid]
            run.violate(f"worker {pid} grew {grew / 2**20:.1f} MiB in {seconds:.0f}s (limit "
                        f"{run.load.rss_growth_limit_mib:.0f} MiB)")
    worst = max(growth.values()) / 2**20
    peak = max(run.memory.last.values()) / 2**20
    run.note(f"RSS growth max {worst:+.1f} MiB (peak {peak:.0f} MiB, {len(growth)} workers)")


def check_connections(run: ChaosRun) -> None:
    """Report the server's peak connection count against its budget (scenario 7 enforces it)."""
    budget = connection_budget(run.env)
    over = " (OVER BUDGET)" if run.connections.peak > budget else ""
    run.note(f"peak connections {run.connections.peak}/{budget}{over}")


def check_invariants(run: ChaosRun) -> None:
    report = run.report()
    run.result.updates = report.updates
    check_acknowledged(run, report)
    check_payments(run)
    check_invites(run)
    check_riders(run)
    check_server_errors(run, report)
    check_outbox(run)
    check_sessions(run)
    check_memory(run)
    check_connections(run)
    totals = report.totals()
    run.note(f"duplicates sent {totals['duplicates_sent']}, no-answer attempts {totals['ambiguous_failures']}")


# --------------------------------------------------------------------------------------------------
# The scenarios
# --------------------------------------------------------------------------------------------------


class Scenario:
    """A fault and its own checks; the load, the settling and the common invariants are the runner's.

    ``inject`` runs on its own thread while the load runs and returns once
    its faults are over (healed); ``restore`` undoes whatever it might have
    left behind if it was interrupted.
    """

    name = ""
    summary = ""
    env: ClassVar[dict[str, str]] = {}
    request_timeout: float | None = None  # per-request timeout of the delivery, if not the load's
    window_grace = 3.0  # seconds after a fault window in which 5xx are still excused

    def load_for(self, load: Load) -> Load:
        return load

    def prepare(self, run: ChaosRun) -> None:
        """Before the server starts (e.g. reconfigure PostgreSQL)."""

    def inject(self, run: ChaosRun) -> None:
        """During the load."""

    def restore(self, run: ChaosRun) -> None:
        """After the load, whatever happened: no fault may outlive the run."""

    def check(self, run: ChaosRun) -> None:
        """After the common invariants."""


class KillWorkers(Scenario):
    name = "kill-workers"
    summary = "workers SIGKILLed at random during the load; gunicorn respawns them"

    def __init__(self) -> None:
        self.kills = 0

    def inject(self, run: ChaosRun) -> None:
        for _ in run.cycles(gap=(1.0, 3.0), needs=1.0):
            workers = run.server.worker_pids()
            if not workers:
                continue
            victim = run.rng.choice(workers)
            with run.window("worker SIGKILLed"):
                if not run.signal_worker(victim, signal.SIGKILL):
                    continue
                run.fault()
                self.kills += 1
                run.server.wait_for_workers(WORKERS, exclude=[victim], timeout=30)

    def check(self, run: ChaosRun) -> None:
        if not self.kills:
            run.violate("no worker was killed")
        run.server.wait_for_workers(WORKERS, timeout=30)
        run.note(f"{self.kills} workers killed and respawned")


class StopDatabase(Scenario):
    name = "db-stop"
    summary = "PostgreSQL stopped and started during the load; /health follows it"
    outage_seconds = 2.0

    def __init__(self) -> None:
        self.to_503: list[float | None] = []
        self.to_200: list[float | None] = []

    def inject(self, run: ChaosRun) -> None:
        for _ in run.cycles(gap=(2.0, 4.0), needs=self.outage_seconds + 3.0):
            with run.window("PostgreSQL stopped"):
                run.cluster.stop()
                run.fault()
                self.to_503.append(run.wait_health(503, within=HEALTH_503_WITHIN + 3.0))
                run.hold(self.outage_seconds)
                run.cluster.start()
                self.to_200.append(run.wait_health(200, within=HEALTH_200_WITHIN + 10.0))

    def restore(self, run: ChaosRun) -> None:
        run.cluster.start()

    def check(self, run: ChaosRun) -> None:
        check_health_timings(run, "stop", self.to_503, self.to_200, HEALTH_200_WITHIN)


def check_health_timings(run: ChaosRun, fault: str, to_503: list, to_200: list, up_within: float) -> None:
    for seconds in to_503:
        if seconds is None or seconds > HEALTH_503_WITHIN:
            run.violate(f"/health said 503 only after {_seconds(seconds)} of the database {fault} "
                        f"(limit {HEALTH_503_WITHIN:.0f}s)")
    for seconds in to_200:
        if seconds is None or seconds > up_within:
            run.violate(f"/health said 200 only after {_seconds(seconds)} of recovery (limit {up_within:.0f}s)")
    if to_503:
        run.note(f"/health 503 after {_seconds(max(to_503, key=_sort_none))}, 200 after recovery in "
                 f"{_seconds(max(to_200, key=_sort_none))} (worst of {len(to_503)})")


def _sort_none(value: float | None) -> float:
    return float("inf") if value is None else value


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}s"


class FreezeDatabase(Scenario):
    name = "db-freeze"
    summary = "PostgreSQL frozen (SIGSTOP) longer than the pool timeout, then thawed"
    freeze_seconds = 3.0 + 1.5  # DB_POOL_TIMEOUT (3 s) and then some
    request_timeout = 12.0  # long enough to see how long a request thread really waits
    slowest_allowed = 8.0  # pool timeout + the client's round-trip deadline + a connect, and slack

    def __init__(self) -> None:
        self.to_503: list[float | None] = []
        self.to_200: list[float | None] = []

    def inject(self, run: ChaosRun) -> None:
        for _ in run.cycles(gap=(2.0, 4.0), needs=self.freeze_seconds + 3.0):
            with run.window("PostgreSQL frozen"):
                frozen_at = time.monotonic()
                run.cluster.freeze()
                run.fault()
                try:
                    self.to_503.append(run.wait_health(503, within=HEALTH_503_WITHIN + 1.0))
                    run.hold(self.freeze_seconds - (time.monotonic() - frozen_at))
                finally:
                    run.cluster.thaw()
                self.to_200.append(run.wait_health(200, within=15.0))

    def restore(self, run: ChaosRun) -> None:
        run.cluster.thaw()

    def check(self, run: ChaosRun) -> None:
        check_health_timings(run, "freeze", self.to_503, self.to_200, up_within=HEALTH_200_WITHIN)
        report = run.simulator.report()
        if report.max_latency > self.slowest_allowed:
            run.violate(f"a webhook request took {report.max_latency:.1f}s during the freeze "
                        f"(bound {self.slowest_allowed:.0f}s)")
        if report.ambiguous_failures:
            run.violate(f"{report.ambiguous_failures} webhook requests got no answer within "
                        f"{self.request_timeout:.0f}s during the freeze")
        run.note(f"slowest webhook answer {report.max_latency:.2f}s")


class TelegramFaults(Scenario):
    name = "telegram-faults"
    summary = "Telegram answers 429 (retry_after), 5xx, slower than the read timeout, or hangs"
    read_timeout = 1.0
    env: ClassVar[dict[str, str]] = {"TELEGRAM_READ_TIMEOUT": "1", "OUTBOX_LEASE_SECONDS": "6"}
    slowest_allowed = 3.0  # the webhook never waits on Telegram: far below any Telegram timeout + hang
    FAULTS = (("429", {"retry_after": 1}), ("5xx", {"status": 502}), ("latency", {"delay": 2.0}), ("hang", {}))

    def __init__(self) -> None:
        self.injected = Counter()

    def inject(self, run: ChaosRun) -> None:
        for _ in run.cycles(gap=(1.0, 2.0), needs=4.0):
            with run.window("Telegram faults", excuses_5xx=False):
                for kind, options in self.FAULTS:
                    run.emulator.inject("*", kind, times=2, **options)
                    self.injected[kind] += 2
                    run.fault(2)
                run.hold(3.0)  # let the outbox run into them
                run.emulator.clear_faults()
                run.emulator.release_hangs()

    def restore(self, run: ChaosRun) -> None:
        run.emulator.clear_faults()
        run.emulator.release_hangs()

    def check(self, run: ChaosRun) -> None:
        met = Counter()
        for call in run.emulator.calls():
            code = call.http_status
            if code == 429 or code >= 500:
                met["429" if code == 429 else "5xx"] += 1
        run.note(f"Telegram faults met by the outbox: 429 x{met['429']}, 5xx x{met['5xx']}")
        report = run.simulator.report()
        if report.max_latency > self.slowest_allowed or report.ambiguous_failures:
            run.violate(f"webhook waited on Telegram: slowest answer {report.max_latency:.1f}s, "
                        f"{report.ambiguous_failures} without an answer")
        run.note(f"slowest webhook answer {report.max_latency:.2f}s")


class RecycleWorkers(Scenario):
    name = "recycle-restart"
    summary = "workers recycled by max_requests, and a graceful restart (SIGHUP) under load"
    max_requests = 20
    env: ClassVar[dict[str, str]] = {"MAX_REQUESTS": str(max_requests)}

    def __init__(self) -> None:
        self.restarts = 0

    def inject(self, run: ChaosRun) -> None:
        for _ in run.cycles(gap=(3.0, 6.0), needs=2.0):
            run.hold(max(0.0, min(2.0, run.load_deadline - time.monotonic() - 2.0)))
            with run.window("graceful restart (SIGHUP)", excuses_5xx=False):
                old = run.server.worker_pids()
                run.server.signal_master(signal.SIGHUP)
                run.fault()
                self.restarts += 1
                run.server.wait_for_workers(WORKERS, exclude=old, timeout=40)

    def check(self, run: ChaosRun) -> None:
        generations = len(run.memory.pids)
        recycled = max(0, generations - WORKERS - WORKERS * self.restarts)
        run.fault(recycled)
        requests_served = sum(1 for _ in run.report().attempts())
        if recycled == 0 and requests_served > 3 * WORKERS * self.max_requests:
            run.violate(f"no worker was recycled after {requests_served} requests (MAX_REQUESTS={self.max_requests})")
        run.note(f"{self.restarts} SIGHUP, {recycled} recycles ({generations} worker pids)")


class FreezeWorker(Scenario):
    """A worker is frozen while it handles a known update; the master replaces it and the update
    is redelivered and handled once.

    To freeze a worker *inside* an update, the update's ledger row is held
    by an open transaction, so the worker that takes the update blocks in
    ``claim_update``; pg_stat_activity then names it (``bot-worker-<pid>``).
    """

    name = "freeze-worker"
    summary = "a worker frozen (SIGSTOP) past gunicorn's timeout mid-update; replaced; update handled once"
    gunicorn_timeout = 5
    env: ClassVar[dict[str, str]] = {"GUNICORN_TIMEOUT": str(gunicorn_timeout), "WATCHDOG_SECONDS": "1"}
    request_timeout = 3.0

    def __init__(self) -> None:
        self.frozen: list[int] = []
        self.targets: list[tuple[int, UpdateRecord | None]] = []

    def load_for(self, load: Load) -> Load:
        # One cycle takes the timeout plus a respawn: the load must outlast it.
        return dataclasses.replace(load, seconds=max(load.seconds, self.gunicorn_timeout + 4.0))

    def inject(self, run: ChaosRun) -> None:
        for _ in run.cycles(gap=(2.0, 4.0), needs=self.gunicorn_timeout + 4.0):
            victim, record = self._freeze_mid_update(run)
            with run.window("worker frozen"):
                run.fault()
                try:
                    run.server.wait_for_log(rf"WORKER TIMEOUT \(pid:{victim}\)", timeout=self.gunicorn_timeout + 15)
                    run.server.wait_for_workers(WORKERS, exclude=[victim], timeout=30)
                    if record is not None:
                        record.wait(STEP_TIMEOUT)
                finally:
                    self._thaw(victim)
            self.targets.append((victim, record))

    def _freeze_mid_update(self, run: ChaosRun) -> tuple[int, UpdateRecord | None]:
        """Freeze the worker that is handling a /start of ours; any worker if that cannot be arranged."""
        try:
            blocker = psycopg.connect(run.cluster.dsn(DATABASE), connect_timeout=5)
        except psycopg.Error as error:
            run.note(f"could not hold a ledger row ({error}); froze a random worker")
            return self._freeze(run, run.rng.choice(run.server.worker_pids())), None
        try:
            update_id = run.next_update_id()
            blocker.execute("INSERT INTO processed_updates (update_id, kind, processed_at) "
                            "VALUES (%s, 'chaos-blocker', now())", (update_id,))
            record = self._submit_start_with_id(run, update_id)
            victim = self._worker_waiting_on_ledger(run)
            if victim is None:
                run.note("no worker blocked on the held ledger row; froze a random worker")
                return self._freeze(run, run.rng.choice(run.server.worker_pids())), None
            return self._freeze(run, victim), record
        except psycopg.Error as error:
            run.note(f"could not hold a ledger row ({type(error).__name__}); froze a random worker")
            return self._freeze(run, run.rng.choice(run.server.worker_pids())), None
        finally:
            blocker.rollback()  # the frozen worker's transaction now holds the row
            blocker.close()

    def _submit_start_with_id(self, run: ChaosRun, update_id: int) -> UpdateRecord:
        user_id = 40_000 + len(self.targets)
        update = text_message_update(update_id, update_id, run.emulator.now(), user_json(user_id, f"U{update_id}"),
                                     "/start")
        record = run.submit(update)
        run.start_updates[update_id] = record
        return record

    @staticmethod
    def _worker_waiting_on_ledger(run: ChaosRun, within: float = 1.5) -> int | None:
        """The pid of the worker whose connection waits for the held row (before statement_timeout ends it)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            rows = run.db("SELECT application_name FROM pg_stat_activity WHERE usename = %s "
                          "AND wait_event_type = 'Lock' AND query ILIKE %s", (SERVER_ROLE, "%processed_updates%"))
            pids = [int(name.rsplit("-", 1)[1]) for (name,) in rows if re.fullmatch(r"bot-worker-\d+", name)]
            if pids:
                return pids[0]
            run.stop.wait(0.02)  # poll interval
        return None

    def _freeze(self, run: ChaosRun, pid: int) -> int:
        run.signal_worker(pid, signal.SIGSTOP)
        self.frozen.append(pid)
        return pid

    @staticmethod
    def _thaw(pid: int) -> None:
        """A victim gunicorn has not killed (yet) must not stay stopped; it is our own child's child."""
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            if psutil.Process(pid).status() == psutil.STATUS_STOPPED:
                os.kill(pid, signal.SIGCONT)

    def restore(self, run: ChaosRun) -> None:
        for pid in self.frozen:
            self._thaw(pid)

    def check(self, run: ChaosRun) -> None:
        riding = Counter(int(m.group(1)) for call in run.emulator.calls("sendMessage")
                         if call.via_webhook_response and (m := START_REPLY.match(str(call.params.get("text", "")))))
        histories, watched = Counter(), 0
        for victim, record in self.targets:
            if f"WORKER TIMEOUT (pid:{victim})" not in run.server_log:
                run.violate(f"gunicorn never timed out frozen worker {victim}")
            if record is not None:
                histories[summarize_statuses(record.statuses)] += 1
                watched += f"stuck request: update_id={record.update_id}" in run.server_log
                self._check_target(run, record, riding[record.update_id])
        caught = sum(histories.values())
        run.note(f"{len(self.targets)} workers frozen and replaced, {caught} of them mid-update, each update "
                 f"handled once ({', '.join(f'{h} x{n}' for h, n in histories.items())}); "
                 f"watchdog reported {watched}/{caught}")

    @staticmethod
    def _check_target(run: ChaosRun, record: UpdateRecord, replies: int) -> None:
        """The update the frozen worker held: first attempt unanswered, then redelivered and handled once."""
        statuses = summarize_statuses(record.statuses)
        if not record.attempts or record.attempts[0].status != "timeout":
            run.violate(f"update {record.update_id} was not in flight in the frozen worker: {statuses}")
        later_ambiguous = any(attempt.ambiguous for attempt in record.attempts[1:] if not attempt.duplicate)
        if record.acknowledged_at is None or replies > 1 or (replies == 0 and not later_ambiguous):
            run.violate(f"in-flight update {record.update_id} handled {replies} times after redelivery ({statuses})")


class ConnectionBudget(Scenario):
    name = "connection-budget"
    summary = "PostgreSQL max_connections just above the server's budget; the server stays within it"
    env: ClassVar[dict[str, str]] = {"GUNICORN_THREADS": "2", "DB_MAX_CONNECTIONS": "10"}

    burst = 30
    stall_seconds = 0.8  # under the probe's 1 s, DB_POOL_TIMEOUT (3 s) and the round-trip deadline (3 s)

    def __init__(self) -> None:
        self.cap = 0

    def load_for(self, load: Load) -> Load:
        # More deliveries at once than the server has threads: its pools stay full.
        return dataclasses.replace(load, connections=max(load.connections, 16))

    def prepare(self, run: ChaosRun) -> None:
        budget = connection_budget(run.env)
        self.cap = budget + reserved_connection_slots(run.cluster) + 1
        run.cluster.set_config(max_connections=self.cap)

    def inject(self, run: ChaosRun) -> None:
        """Fill every pool to capacity, then see that nothing more is opened.

        Each cycle: /health on every worker (each keeps its probe
        connection), a burst of plan presses (their invoices wake the outbox
        senders), then a burst of /start into a database stalled for under a
        second, so every request thread holds its connection and more are
        opened. The stall is below every timeout (and the probe's 1 s
        deadline): no 5xx is excused.
        """
        run.emulator.set_latency("*", 0.2)  # the outbox stays busy too
        users = itertools.count(60_000)
        for _ in run.cycles(gap=(0.5, 1.5), needs=1.5):
            self._probe_every_worker(run)
            with run.window("burst into a stalled database", excuses_5xx=False):
                for _ in range(self.burst // 2):
                    user_id = next(users)
                    run.emulator.user(user_id, has_started_bot=True)
                    run.submit_button(user_id, "buy:week")
                run.cluster.freeze()
                try:
                    for _ in range(self.burst // 2):
                        run.submit_start(next(users))
                    run.hold(self.stall_seconds)
                finally:
                    run.cluster.thaw()
            run.fault()

    @staticmethod
    def _probe_every_worker(run: ChaosRun, within: float = 3.0) -> None:
        deadline, seen = time.monotonic() + within, set()
        while not set(run.server.worker_pids()) <= seen and time.monotonic() < deadline:
            seen.add(run.health()[1].get("worker_pid"))

    def restore(self, run: ChaosRun) -> None:
        run.cluster.thaw()
        run.emulator.set_latency("*", 0)

    def check(self, run: ChaosRun) -> None:
        budget = connection_budget(run.env)
        if run.connections.peak > budget:
            run.violate(f"the server held {run.connections.peak} connections, over its budget of {budget}")
        refused = [line for line in run.cluster.log_text().splitlines()
                   if "remaining connection slots" in line or "too many clients" in line]
        for line in refused[:5]:
            run.violate(f"PostgreSQL refused a connection: {line.strip()}")
        run.note(f"max_connections={self.cap}, {run.result.faults} bursts of {self.burst} into a "
                 f"{self.stall_seconds:.1f}s stall, "
                 f"{run.connections.samples} samples")


SCENARIOS: dict[str, type[Scenario]] = {
    scenario.name: scenario
    for scenario in (KillWorkers, StopDatabase, FreezeDatabase, TelegramFaults, RecycleWorkers, FreezeWorker,
                     ConnectionBudget)
}


# --------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------


def run_scenario(name: str, cluster: PgCluster, load: Load = Load(), seed: int | None = None,
                 keep_log: Callable[[str, str], None] | None = None) -> ScenarioResult:
    """Run scenario ``name`` on ``cluster`` (which must have a database ``bot``) and check its invariants.

    Returns the result row; call ``result.assert_invariants()`` to fail on a
    broken promise. ``keep_log(kind, text)`` receives the server and
    PostgreSQL logs (they are deleted with the run otherwise).
    """
    scenario = SCENARIOS[name]()
    load = scenario.load_for(load)
    run = ChaosRun(scenario, cluster, load, seed)
    started = time.monotonic()
    database_url = prepare_database(cluster)
    scenario.prepare(run)
    emulator = BotApiEmulator(token=BOT_TOKEN, channel_id=CHANNEL_ID, implicit_users=True,
                              retry_delays=(0.1, 0.2, 0.4, 0.8, 1.0), max_attempts=90,
                              timeout=scenario.request_timeout or load.request_timeout)
    with emulator, running_server(database_url, emulator, **run.env) as server:
        run.emulator, run.server = emulator, server
        try:
            _drive(run)
            settle(run)
            run.server_log = server.log_text()
            check_invariants(run)
            scenario.check(run)
        finally:
            run.stop.set()
            _stop_samplers(run)
            if run.simulator is not None:
                run.simulator.close()
            run.server_log = server.log_text()
            if keep_log is not None:
                keep_log("server", run.server_log)
                keep_log("postgresql", cluster.log_text())
    run.result.evidence = notable_log_lines(run.server_log) if run.result.violations else []
    run.result.seconds = time.monotonic() - started
    return run.result


def _drive(run: ChaosRun) -> None:
    """Start the delivery and the samplers, run the load and the faults together, undo the faults."""
    load = run.load
    run.simulator = DeliverySimulator(
        f"{run.server.url}/webhook", WEBHOOK_SECRET, max_connections=load.connections,
        request_timeout=run.scenario.request_timeout or load.request_timeout, backoff=Backoff(first=0.1, cap=2.0),
        duplicate_probability=load.duplicate_probability, time_limit=load.seconds + 300.0,
        execute_response=run.emulator.surface.execute_from_webhook_response, seed=run.rng.getrandbits(32),
    ).start()
    run.connections = ConnectionSampler(run.cluster).start()
    run.memory = MemorySampler(run.server).start()
    run.load_deadline = time.monotonic() + load.seconds
    injector_done = threading.Event()
    failure: list[BaseException] = []

    def inject() -> None:
        try:
            run.scenario.inject(run)
        except BaseException as error:  # noqa: BLE001 - re-raised below, after the load stops
            failure.append(error)
        finally:
            injector_done.set()

    injector = threading.Thread(target=inject, name=f"inject-{run.scenario.name}", daemon=True)
    injector.start()
    try:
        LoadGenerator(run).drive(injector_done)
    finally:
        if failure:
            run.stop.set()
        injector.join(120)
        run.scenario.restore(run)
        run.load_over = time.monotonic()
    if failure:
        raise RuntimeError(f"fault injection failed: {failure[0]!r}") from failure[0]


def _stop_samplers(run: ChaosRun) -> None:
    for sampler in (run.connections, run.memory):
        if sampler is not None:
            sampler.stop()


def notable_log_lines(log: str, limit: int = 20) -> list[str]:
    """Distinct error lines from the server log, the evidence to read first."""
    seen: dict[str, str] = {}
    for line in log.splitlines():
        if re.search(r"\b(ERROR|CRITICAL)\b|Traceback|Error:", line):
            key = re.sub(r"\d+", "N", line)[:160]  # the same error for another pid or update is not news
            seen.setdefault(key, line[:300])
            if len(seen) >= limit:
                break
    return list(seen.values())
