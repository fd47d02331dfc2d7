"""Local sandbox mode as the README's first command starts it: gunicorn from the Procfile, no BOT_TOKEN."""
from __future__ import annotations

import signal
import socket

import psutil
import pytest
import requests

from local_sandbox.launcher import REAL_BOT_HINT
from settings.telegram import SECRET_HEADER
from stack_harness.bot_env import BOT_TOKEN, CHANNEL_ID
from stack_harness.gunicorn_server import GunicornHarnessError, GunicornServer
from stack_harness.real_server import REPO
from tests.helpers import wait_until
from tests.local_sandbox.conftest import sandbox_env

pytestmark = pytest.mark.timeout(120)


def emulator_processes(server: GunicornServer) -> list[psutil.Process]:
    return [child for child in psutil.Process(server.master_pid).children()
            if "local_sandbox.telegram_process" in " ".join(child.cmdline())]


def gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def test_no_token_starts_the_sandbox_wired_and_says_what_to_open(sandbox_server):
    server = sandbox_server
    server.wait_for_log(rf"Open http://127\.0\.0\.1:{server.port}/ to talk to your bot")
    assert f"Listening at: http://127.0.0.1:{server.port}" in server.log_text()  # this machine only
    assert requests.get(f"{server.url}/", timeout=5).status_code == 200
    webhook = requests.get(f"{server.telegram_url}/control/webhook", timeout=5).json()["result"]
    assert webhook["url"] == f"{server.url}/webhook" and "chat_member" in webhook["allowed_updates"]
    secret = webhook["secret_token"]
    assert len(secret) >= 32 and secret not in server.log_text()
    # The generated secret is the one the workers check: a wrong one is refused.
    refused = requests.post(f"{server.url}/webhook", json={"update_id": 1}, headers={SECRET_HEADER: "wrong"}, timeout=5)
    assert refused.status_code == 401
    sent = requests.post(f"{server.url}/sandbox/api/send", json={"user_id": 1001, "text": "/help"}, timeout=30).json()
    assert sent["outcome"] == "acknowledged" and sent["status"] == 200
    [emulator] = emulator_processes(server)
    server.stop()
    wait_until(lambda: gone(emulator), timeout=10, message="the emulator to stop with the server")
    assert not answers(f"{server.telegram_url}/control/info")


def test_a_bot_token_never_starts_the_sandbox_and_says_how_to_run_for_real(tmp_path):
    env = sandbox_env(tmp_path, BOT_TOKEN=BOT_TOKEN, CHANNEL_ID=str(CHANNEL_ID))
    with GunicornServer(REPO, env) as server:
        server.wait_for_log(r"BOT_TOKEN is set, so the local sandbox is off")
        assert REAL_BOT_HINT in server.log_text()
        assert f"Listening at: http://0.0.0.0:{server.port}" in server.log_text()
        assert requests.get(f"{server.url}/", timeout=5).status_code == 404
        assert not answers(f"http://127.0.0.1:{env['SANDBOX_TELEGRAM_PORT']}/control/info")
        assert emulator_processes(server) == []


def test_a_taken_emulator_port_stops_the_server_with_one_line(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        env = sandbox_env(tmp_path, SANDBOX_TELEGRAM_PORT=str(squatter.getsockname()[1]))
        server = GunicornServer(REPO, env)
        try:
            with pytest.raises(GunicornHarnessError, match="exited with 2"):
                server.start(timeout=30)
            lines = [line for line in server.log_text().splitlines() if line.startswith("local sandbox:")]
            assert lines == [f"local sandbox: port {env['SANDBOX_TELEGRAM_PORT']} for the Telegram emulator is taken; "
                             "set SANDBOX_TELEGRAM_PORT to a free port"]
        finally:
            server.close()


def test_the_emulator_goes_when_the_master_is_killed(sandbox_server):
    [emulator] = emulator_processes(sandbox_server)
    sandbox_server.signal_master(signal.SIGKILL)  # no hook runs: the emulator must notice on its own
    wait_until(lambda: gone(emulator), timeout=10, message="the orphaned emulator to exit")
