"""The chaos scenarios, briefly: each one for a few seconds of a small load (the CI subset).

Every scenario starts real gunicorn on a PostgreSQL cluster of its own
(``fault_cluster``), injects its fault while the load runs and then checks
the invariants in ``stack_harness/chaos/``. The long version is
``python scripts/chaos.py --minutes N``.
"""
from __future__ import annotations

import itertools
import zlib

import pytest

from botapi_emulator import text_message_update, user_json
from stack_harness.bot_env import WEBHOOK_SECRET
from stack_harness.chaos import SCENARIOS, Load, format_table, run_scenario
from stack_harness.delivery_simulator import DeliverySimulator
from stack_harness.real_server import running_server

# A few seconds of load each: with server start, settling and checks about
# 15-25 s per scenario on a 2-core machine.
FAST = Load(seconds=4.0, rate=12.0, users=30, payers=3, duplicate_probability=0.05, connections=8)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_loses_nothing_and_doubles_nothing(name, fault_cluster):
    result = run_scenario(name, fault_cluster, FAST, seed=zlib.crc32(name.encode()))
    print("\n" + format_table([result.row()]))
    result.assert_invariants()
    assert result.updates > FAST.rate * FAST.seconds / 2, "the load did not run"
    assert result.faults > 0, "no fault was injected"


def overlapping(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    return max(itertools.accumulate(change for _, change in edges), default=0)


@pytest.mark.timeout(60)
def test_simulator_keeps_chats_in_order_sends_duplicates_and_retries(pg_database_url, emulator):
    """The simulator against the real server: one update in flight per chat, at most
    max_connections at once, duplicates acknowledged without a second reply, and a server
    that went away retried until the time limit."""
    with running_server(pg_database_url, emulator) as server:
        url = f"{server.url}/webhook"
        with DeliverySimulator(url, WEBHOOK_SECRET, max_connections=4, request_timeout=5, duplicate_probability=1.0,
                               execute_response=emulator.surface.execute_from_webhook_response, seed=1) as simulator:
            records = [simulator.submit(text_message_update(900 + n, 900 + n, 0, user_json(700 + n % 3, f"U{900 + n}"),
                                                            "/start")) for n in range(30)]
            assert simulator.drain(30)
            simulator.resend(records[0])  # and one more on demand
            assert simulator.drain(30)
        report = simulator.report()
        assert report.acknowledged == 30 and not report.never_acknowledged
        assert report.duplicates_sent == 31 and report.server_errors == 0
        replies = sorted(call.params["text"].split("!")[0] for call in emulator.calls("sendMessage")
                         if call.params["text"].startswith("Welcome, U"))
        assert replies == sorted(f"Welcome, U{900 + n}" for n in range(30))  # duplicates answered without a reply
        assert all(record.first_response.via_webhook_response for record in records)
        spans = {record.update_id: [(a.started, a.started + a.elapsed) for a in record.attempts] for record in records}
        for chat in (700, 701, 702):
            chat_spans = [span for record in records if record.chat_key == chat for span in spans[record.update_id]]
            assert overlapping(chat_spans) == 1
        assert overlapping([span for chat_spans in spans.values() for span in chat_spans]) <= 4

    with DeliverySimulator(url, WEBHOOK_SECRET, max_connections=2, request_timeout=1, time_limit=1.5) as gone:
        record = gone.submit(text_message_update(999, 999, 0, user_json(799), "/help"))
        assert not gone.drain(5)
    assert record.acknowledged_at is None and len(record.attempts) >= 2
    assert set(record.statuses) == {"connection-error"}
