"""Money invariants: each Stars payment credited once, every payer invited, the outbox caught up."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

from stack_harness.chaos.constants import INVITE_MARK, PLAN_DAYS, SETTLE_TIMEOUT
from stack_harness.chaos.harness import ChaosRun


def invite_messages(run: ChaosRun) -> Counter:
    """Invite link messages the bot delivered, per user."""
    return Counter(call.params["chat_id"] for call in run.emulator.calls("sendMessage")
                   if call.ok and INVITE_MARK in str(call.params.get("text", "")))


def owed_invites(run: ChaosRun) -> Counter:
    """Invites owed: one per payment Telegram took."""
    return Counter(payment["user_id"] for payment in run.emulator.payments())


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
