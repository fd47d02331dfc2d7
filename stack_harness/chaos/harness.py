"""One run: what it holds (cluster, emulator, server, delivery) and records (faults, their windows, notes).

The plumbing every scenario, the load and the checks go through. ``Load``
and ``Scenario`` are named here for their types only: they build on this
module, not the other way round.
"""
from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from botapi_emulator import (
    BotApiEmulator,
    callback_query_update,
    pre_checkout_query_update,
    private_chat_json,
    text_message_update,
    user_json,
)
from stack_harness.chaos.constants import BASE_ENV, DATABASE
from stack_harness.chaos.report import ScenarioResult
from stack_harness.chaos.samplers import ConnectionSampler, MemorySampler
from stack_harness.delivery_simulator import Attempt, DeliveryReport, DeliverySimulator, UpdateRecord, chat_key
from stack_harness.gunicorn_server import GunicornHarnessError, GunicornServer
from stack_harness.pg_cluster import PgCluster

if TYPE_CHECKING:
    from stack_harness.chaos.load import Load
    from stack_harness.chaos.scenarios.base import Scenario


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
