"""What a scenario is: a fault and its own checks, on hooks the runner calls."""
from __future__ import annotations

from typing import ClassVar

from stack_harness.chaos.harness import ChaosRun
from stack_harness.chaos.load import Load


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
