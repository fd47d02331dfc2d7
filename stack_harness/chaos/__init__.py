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
notes). ``tests/end_to_end/test_chaos.py`` runs each one briefly; ``scripts/chaos.py``
runs them in rotation for as long as asked.

Timing: waits are deadlines on conditions (acknowledgements, emulator calls,
database rows, log lines). The only plain waits are the load's pacing and the
chosen length of a fault (how long the database stays down), never a guess
that something has happened.

Layout, from the top down (a module imports only from modules below it; ``harness``
names ``Load`` and ``Scenario`` for type checking only):

- ``scenarios/``: the seven scenarios, one module per family of fault
  (``worker_faults``, ``database_faults``, ``telegram_faults``) on the
  ``Scenario`` base, and ``runner``: ``SCENARIOS`` and ``run_scenario``;
- ``checks/``: the invariants checked after each scenario (``delivery``:
  nothing lost, nothing handled twice; ``payments``: credited once, invited,
  outbox caught up; ``resources``: sessions, pools, memory, connections);
- ``load``: ``Load`` and the ``LoadGenerator`` that drives updates;
- ``harness``: ``ChaosRun``, what one run holds (cluster, emulator, server,
  delivery) and records; under it ``samplers`` (connections, memory) and
  ``db_setup`` (the server's role, reserved slots, connection budget);
- ``report``: ``ScenarioResult`` and ``format_table``; ``constants``: the
  constants every module shares.
"""
from __future__ import annotations

from stack_harness.chaos.db_setup import prepare_database
from stack_harness.chaos.load import Load
from stack_harness.chaos.report import ScenarioResult, format_table
from stack_harness.chaos.scenarios import SCENARIOS, run_scenario

__all__ = ["SCENARIOS", "Load", "ScenarioResult", "format_table", "prepare_database", "run_scenario"]
