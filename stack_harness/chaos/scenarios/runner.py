"""The runner: ``SCENARIOS`` by name, and ``run_scenario``: drive the load and the faults, settle, check."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from botapi_emulator import BotApiEmulator
from stack_harness.bot_env import BOT_TOKEN, CHANNEL_ID, WEBHOOK_SECRET
from stack_harness.chaos.checks import check_invariants, invite_messages, owed_invites
from stack_harness.chaos.constants import SETTLE_TIMEOUT
from stack_harness.chaos.db_setup import prepare_database
from stack_harness.chaos.harness import ChaosRun
from stack_harness.chaos.load import Load, LoadGenerator
from stack_harness.chaos.report import ScenarioResult, notable_log_lines
from stack_harness.chaos.samplers import ConnectionSampler, MemorySampler
from stack_harness.chaos.scenarios.base import Scenario
from stack_harness.chaos.scenarios.database_faults import ConnectionBudget, FreezeDatabase, StopDatabase
from stack_harness.chaos.scenarios.telegram_faults import TelegramFaults
from stack_harness.chaos.scenarios.worker_faults import FreezeWorker, KillWorkers, RecycleWorkers
from stack_harness.delivery_simulator import Backoff, DeliverySimulator
from stack_harness.pg_cluster import PgCluster
from stack_harness.real_server import running_server

SCENARIOS: dict[str, type[Scenario]] = {
    scenario.name: scenario
    for scenario in (KillWorkers, StopDatabase, FreezeDatabase, TelegramFaults, RecycleWorkers, FreezeWorker,
                     ConnectionBudget)
}


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


def _stop_samplers(run: ChaosRun) -> None:
    for sampler in (run.connections, run.memory):
        if sampler is not None:
            sampler.stop()
