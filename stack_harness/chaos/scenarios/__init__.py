"""The scenarios: one module per family of fault, ``SCENARIOS`` by name, and ``run_scenario``.

- ``worker_faults``: workers SIGKILLed, recycled and restarted, frozen mid-update;
- ``database_faults``: PostgreSQL stopped, frozen, and capped just above the server's budget;
- ``telegram_faults``: Telegram answering 429, 5xx, slowly or not at all.
"""
from __future__ import annotations

from stack_harness.chaos.scenarios.base import Scenario
from stack_harness.chaos.scenarios.runner import SCENARIOS, run_scenario

__all__ = ["SCENARIOS", "Scenario", "run_scenario"]
