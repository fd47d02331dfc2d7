"""A call over a keep-alive connection costs what the emulator is told to take, not a TCP stall."""

from __future__ import annotations

import statistics
import time

import requests

from tests.botapi_emulator.bot_calls import TOKEN


def test_keep_alive_calls_are_not_held_by_the_delayed_ack(telegram):
    """With Nagle's algorithm on, each response's body waited for the client's delayed ACK of its headers.

    That was 40 ms or more on every call after a connection's first, which
    benchmarks read as Telegram's latency; without it a call takes about 1 ms.
    """
    durations = []
    with requests.Session() as session:
        for _ in range(15):
            started = time.monotonic()
            assert session.post(f"{telegram.url}/bot{TOKEN}/getMe", timeout=5).status_code == 200
            durations.append(time.monotonic() - started)
    assert statistics.median(durations) < 0.02, durations
