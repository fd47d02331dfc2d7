"""The outbox tests' own app: schema at head, no background threads, so the test decides who sends."""
from __future__ import annotations

import pytest

from stack_harness.bot_env import make_env
from tests.helpers import build_app
from worker_process import lifecycle


@pytest.fixture
def quiet_app(pg_database_url, emulator):
    """Nothing claims a job but the test, or a sender the test starts (tests.bot_outbox.senders)."""
    app = build_app(make_env(pg_database_url, emulator.url), background=False)
    yield app
    lifecycle.shutdown(app)
