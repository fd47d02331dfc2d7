"""Faults of the gunicorn workers: SIGKILLed, recycled and gracefully restarted, frozen mid-update."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import time
from collections import Counter
from typing import ClassVar

import psutil
import psycopg

from botapi_emulator import text_message_update, user_json
from stack_harness.chaos.checks import summarize_statuses
from stack_harness.chaos.constants import DATABASE, SERVER_ROLE, START_REPLY, STEP_TIMEOUT, WORKERS
from stack_harness.chaos.harness import ChaosRun
from stack_harness.chaos.load import Load
from stack_harness.chaos.scenarios.base import Scenario
from stack_harness.delivery_simulator import UpdateRecord


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
            victim = self._worker_waiting_on_ledger(run, update_id)
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
    def _worker_waiting_on_ledger(run: ChaosRun, update_id: int, within: float = 1.5) -> int | None:
        """The pid of the worker whose connection waits for the held row (before statement_timeout ends it).

        Matched by the update's id in the statement (psycopg2 sends values
        inline): any intake waiting on any lock, a duplicate delivery's say,
        mentions processed_updates too, and freezing that worker would test nothing.
        """
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            rows = run.db("SELECT application_name FROM pg_stat_activity WHERE usename = %s "
                          "AND wait_event_type = 'Lock' AND query ILIKE %s",
                          (SERVER_ROLE, f"%INSERT INTO processed_updates%VALUES ({update_id},%"))
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
