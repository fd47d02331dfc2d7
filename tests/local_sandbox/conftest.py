"""``sandbox_server``: the README's first command, for real: gunicorn from the Procfile with no
BOT_TOKEN, in local sandbox mode, on a SQLite file of its own (never the developer's instance/)."""
from __future__ import annotations

import pytest
from port_for import select_random

from stack_harness.gunicorn_server import GunicornServer
from stack_harness.real_server import REPO


def sandbox_env(tmp_path, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3", "SANDBOX_TELEGRAM_PORT": str(select_random()),
            **extra}


@pytest.fixture
def sandbox_server(tmp_path):
    env = sandbox_env(tmp_path)
    with GunicornServer(REPO, env) as server:
        server.telegram_url = f"http://127.0.0.1:{env['SANDBOX_TELEGRAM_PORT']}"
        yield server
