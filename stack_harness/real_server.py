"""Running the real server for end-to-end tests: gunicorn from the Procfile, webhook set by the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

from settings.telegram import SECRET_HEADER
from stack_harness.bot_env import WEBHOOK_SECRET, make_env
from stack_harness.gunicorn_server import GunicornServer

REPO = Path(__file__).resolve().parents[1]


def flask_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "main", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=60)


@contextmanager
def running_server(database_url: str, emulator, **settings: str) -> Iterator[GunicornServer]:
    env = make_env(database_url, emulator.url, **{"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4", **settings})
    with GunicornServer(REPO, env) as server:
        result = flask_cli(env, "set-webhook", f"{server.url}/webhook")
        assert result.returncode == 0, result.stderr
        yield server


def post_raw(server: GunicornServer, update: dict, timeout: float = 10.0) -> requests.Response:
    return requests.post(f"{server.url}/webhook", json=update, headers={SECRET_HEADER: WEBHOOK_SECRET},
                         timeout=timeout)
