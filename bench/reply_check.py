"""The check for peers without a ledger: every acknowledged update got its reply, none got two.

The naive and aiogram peers send their ``/start`` reply through the Bot API
before they answer the webhook, and the reply greets the sender by first
name, which ends in ``#<update_id>`` (bench/wrk_load.py). So the emulator's
``sendMessage`` calls say which updates were handled. Their webhook answers
carry nothing, so wrk cannot tell which update each 2xx acknowledged; the
check is by count: no update_id replied to twice, and at least as many
distinct replies as 2xx answers (a few more are updates in flight when wrk
stopped: handled, answered, but the answer no longer read).
"""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass

from bench.emulator_process import EmulatorProcess
from bench.wrk_load import LoadResult

_REPLY_ID = re.compile(r"#(\d+)!")
SETTLE_SECONDS = 0.5
SETTLE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ReplyCheck:
    acknowledged: int   # 2xx answers seen by wrk
    replies: int        # sendMessage calls naming an update
    distinct: int       # distinct update_ids among them

    @property
    def duplicates(self) -> int:
        return self.replies - self.distinct

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.distinct >= self.acknowledged

    def lines(self) -> list[str]:
        verdict = "OK" if self.ok else "MISMATCH"
        return [
            f"2xx answers (every run against it): {self.acknowledged}",
            f"sendMessage replies naming an update: {self.replies}, distinct updates: {self.distinct}, "
            f"replied twice: {self.duplicates}   {verdict}",
            f"replies beyond the 2xx answers (in flight when wrk stopped): {self.distinct - self.acknowledged}",
        ]


def collect_replies(emulator: EmulatorProcess) -> list[int]:
    """update_ids of the sendMessage calls since the last collection, once the calls stop coming."""
    ids: list[int] = []
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        fresh = [_update_id(call) for call in emulator.new_calls("sendMessage")]
        ids.extend(update_id for update_id in fresh if update_id is not None)
        if not fresh or time.monotonic() >= deadline:
            return ids
        time.sleep(SETTLE_SECONDS)


def check_replies(emulator: EmulatorProcess, runs: list[LoadResult]) -> ReplyCheck:
    ids = collect_replies(emulator)
    return ReplyCheck(acknowledged=sum(run.ok for run in runs), replies=len(ids), distinct=len(Counter(ids)))


def _update_id(call: dict) -> int | None:
    match = _REPLY_ID.search(str(call["params"].get("text", "")))
    return int(match.group(1)) if match else None
