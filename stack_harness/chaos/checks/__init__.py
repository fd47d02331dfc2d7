"""The invariants, checked after each scenario once the run has settled.

``check_invariants`` runs them all: ``delivery`` (every update acknowledged,
none handled twice, no 5xx outside a fault window), ``payments`` (each
payment credited once, every payer invited, the outbox caught up) and
``resources`` (no idle-in-transaction, pools idle, RSS, connection budget).
"""
from __future__ import annotations

from stack_harness.chaos.checks.delivery import (
    check_acknowledged,
    check_riders,
    check_server_errors,
    summarize_statuses,
)
from stack_harness.chaos.checks.payments import (
    check_invites,
    check_outbox,
    check_payments,
    invite_messages,
    owed_invites,
)
from stack_harness.chaos.checks.resources import check_connections, check_memory, check_sessions
from stack_harness.chaos.harness import ChaosRun

__all__ = ["check_invariants", "invite_messages", "owed_invites", "summarize_statuses"]


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
