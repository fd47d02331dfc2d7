"""Deliver a stream of updates to a webhook the way Telegram does, and report what became of each.

Why not the emulator's own delivery: ``BotApiEmulator.deliver`` sends one
update per call and blocks its caller, which suits a test that acts as one
user. A chaos run or a benchmark needs a stream: many chats at once, a bound
on connections, per-chat order, retries that outlive an outage of the
server, duplicates on demand, and afterwards a record per update to check
"nothing lost, nothing doubled" against.

What it reproduces of Telegram (see platform-facts and the Bot API docs):

- at most ``max_connections`` requests in flight at once;
- per chat (per user for private chats, whose chat id is the user's id) one
  update in flight, in order: the next waits until the previous was
  acknowledged, as Telegram's per-chat queue does;
- anything but a 2xx, a timeout or a failed connection is retried with
  exponential back-off and jitter, under the same ``update_id``; while an
  update backs off, its chat waits but its connection serves other chats;
- a ``{"method": ...}`` in a 2xx body is executed (handed to
  ``execute_response``, e.g. the emulator's ``surface.execute_from_webhook_response``)
  and its outcome is reported to no one;
- on demand, an acknowledged update is sent again (``duplicate_probability``),
  as Telegram does when our answer got lost on the way.

Everything is bounded: every request has ``request_timeout``, and nothing is
attempted ``time_limit`` seconds after ``start()``. An update not acknowledged
by then is reported as never acknowledged.

Usage::

    with DeliverySimulator(url, secret, max_connections=8,
                           execute_response=emulator.surface.execute_from_webhook_response) as sim:
        record = sim.submit(update)
        record.wait(10)                 # acknowledged (and its response method executed)?
        sim.drain(30)
        report = sim.report()           # report.never_acknowledged, report.server_errors, ...
"""
from __future__ import annotations

from .records import Attempt, DeliveryReport, UpdateRecord
from .simulator import DeliverySimulator
from .telegram_rules import Backoff, chat_key

__all__ = ["Attempt", "Backoff", "DeliveryReport", "DeliverySimulator", "UpdateRecord", "chat_key"]
