"""Faults of PostgreSQL: stopped, frozen (SIGSTOP), and max_connections just above the server's budget."""
from __future__ import annotations

import dataclasses
import itertools
import time
from typing import ClassVar

from stack_harness.chaos.constants import HEALTH_200_WITHIN, HEALTH_503_WITHIN
from stack_harness.chaos.db_setup import connection_budget, reserved_connection_slots
from stack_harness.chaos.harness import ChaosRun
from stack_harness.chaos.load import Load
from stack_harness.chaos.scenarios.base import Scenario


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
