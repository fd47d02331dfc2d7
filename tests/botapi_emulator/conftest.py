"""Fixtures of the emulator tests: ``telegram`` (a fast-retrying emulator) and ``receiver`` (the bot's webhook)."""

from __future__ import annotations

import pytest

from botapi_emulator import BotApiEmulator
from tests.botapi_emulator.bot_calls import CHANNEL, FAST_RETRIES, TOKEN
from tests.botapi_emulator.webhook_receiver import WebhookReceiver


@pytest.fixture
def telegram():
    with BotApiEmulator(TOKEN, CHANNEL, retry_delays=FAST_RETRIES, max_attempts=3, timeout=2.0) as emulator:
        yield emulator


@pytest.fixture
def receiver():
    webhook = WebhookReceiver().start()
    yield webhook
    webhook.stop()
