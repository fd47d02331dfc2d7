"""Outgoing pace: Telegram allows about 30 calls a second per bot, shared by every sender of every replica.

One schedule in the database (``models.outbox_pace``) hands out turns, evenly
spaced: a sender that has claimed a job reserves the next free turn with one
upsert, in the claim's own transaction (no extra round trip), commits, and
then sleeps until its turn holding no connection. However many workers and
replicas run, their calls together keep to ``OUTBOX_MAX_PER_SECOND``.

Why reservations rather than a counter per second: a counter lets a whole
second's budget go out at once at the start of each second, so a one-second
window straddling two seconds can see twice the limit; turns spaced by
``interval`` never put more than the limit in any second. Nor does a sender
ask again and again while a second is full: every reservation succeeds, the
answer is when.

Why the database's clock: replicas' clocks differ by milliseconds to
seconds, and a schedule kept on several clocks would let two replicas take
the same moment. The database's clock is the one clock every sender shares;
it only ever hands back a delay (turn minus its own now), which each sender
waits out on its own monotonic clock, so no two clocks are ever compared.

No session state and no advisory lock: one row, one statement, row-locked
only until the claim's commit, so it is safe behind a transaction-mode
PgBouncer. When the database is down no job can be claimed either, so there
is nothing to pace.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

PACE = "telegram"
# A call reaches Telegram a little after its turn: the wake-up, the request,
# on a busy machine the scheduler; one call more than another. Spacing
# ``per_second`` turns over this much more than a second keeps every
# one-second window at Telegram within ``per_second`` while those delays
# differ by less than this (measured in the two-replica test on two shared,
# overloaded cores: up to 0.05 s). The steady pace is ``per_second / 1.1``.
JITTER_ALLOWANCE_SECONDS = 0.1

# The database's clock, in seconds since the epoch, read once per statement.
_CLOCKS = {
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS double precision)",
    "sqlite": "(julianday('now') - 2440587.5) * 86400.0",  # 'now' is fixed for the whole statement
}
_LATER = {"postgresql": "GREATEST", "sqlite": "max"}


@dataclass(frozen=True)
class Turn:
    at: float  # on the database's clock (epoch seconds)
    wait: float  # seconds from the reservation until then
    due: float  # the same moment on this process's monotonic clock


class SharedPace:
    """At most ``per_second`` turns a second across every sender that shares the database."""

    def __init__(self, per_second: float, name: str = PACE):
        self.interval = (1.0 + JITTER_ALLOWANCE_SECONDS) / per_second
        self._name = name

    def reserve(self, session: Session) -> Turn:
        """Take the next free turn, in the caller's transaction: the caller commits, then waits it out."""
        statement = _reserve_statement(session.connection().dialect.name)
        at, asked_at = session.execute(statement, {"name": self._name, "interval": self.interval}).one()
        wait = max(0.0, at - asked_at)
        # Counted from the answer, not from after the commit: a slow commit must not push the call later.
        return Turn(at, wait, time.monotonic() + wait)

    @staticmethod
    def wait_for(turn: Turn) -> None:
        delay = turn.due - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing, not synchronisation: the turn is due then


@cache
def _reserve_statement(dialect: str) -> TextClause:
    """The turn is the later of the next free turn and now; the one after it is an interval on.

    An upsert, so the row makes itself on the first call (a fresh database, or
    an operator who deleted it to reset the schedule after a clock jump).
    SQLite wants ``WHERE true`` to tell the SELECT from the ON CONFLICT.
    """
    return text(f"""
        INSERT INTO outbox_pace (name, asked_at, next_turn_at)
        SELECT :name, clock.now, clock.now + :interval FROM (SELECT {_CLOCKS[dialect]} AS now) AS clock WHERE true
        ON CONFLICT (name) DO UPDATE
        SET asked_at = excluded.asked_at,
            next_turn_at = {_LATER[dialect]}(outbox_pace.next_turn_at, excluded.asked_at) + :interval
        RETURNING next_turn_at - :interval, asked_at
    """)
