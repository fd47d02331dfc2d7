"""Faults of Telegram: 429 with retry_after, 5xx, answers slower than the read timeout, hangs."""
from __future__ import annotations

from collections import Counter
from typing import ClassVar

from stack_harness.chaos.harness import ChaosRun
from stack_harness.chaos.scenarios.base import Scenario


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
