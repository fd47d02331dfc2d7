"""The gunicorn master's side of the sandbox: start Telegram, wire the bot to it, stop it.

Called from ``gunicorn.conf.py``: :func:`start` in ``on_starting`` (after the
migrations, before any worker forks), :func:`ready_banner` in ``when_ready``,
:func:`TelegramProcess.stop` in ``on_exit``. Every call to the emulator has
a timeout; a sandbox that cannot start stops the server with one line.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from bot_outbox.client import BotApiClient, TelegramError, TelegramUnavailable, Timeouts
from operations.telegram_setup import ALLOWED_UPDATES, BOT_COMMANDS
from settings import Settings
from settings.sandbox import SANDBOX_HOST
from settings.telegram import MAX_WEBHOOK_CONNECTIONS

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 5.0
# People to act as on a fresh start: one buyer, and the admin of ADMIN_IDS.
DEMO_BUYER = {"user_id": 1001, "first_name": "Ada"}

REAL_BOT_HINT = (
    "BOT_TOKEN is set, so the local sandbox is off: this is a real bot on the embedded SQLite database. "
    "To run it for real, set DATABASE_URL (PostgreSQL), WEBHOOK_SECRET, CHANNEL_ID and ADMIN_IDS, then register "
    "the webhook with `flask --app main set-webhook https://<your domain>/webhook` "
    "(README: Deploying on Railway). Unset BOT_TOKEN to try the bot in the local sandbox instead.")


class SandboxError(RuntimeError):
    """The sandbox could not start; the message is the one line to print."""


class TelegramProcess:
    """The emulator's child process, stopped with the master."""

    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process = process
        self.url = url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(settings: Settings) -> TelegramProcess:
    """Start the emulator, wait until it answers, and wire the bot to it (webhook, menu, demo users)."""
    _require_free_port(settings.sandbox_telegram_port)
    process = subprocess.Popen(
        [sys.executable, "-m", "local_sandbox.telegram_process", "--port", str(settings.sandbox_telegram_port),
         "--channel-id", str(settings.channel_id), "--parent-pid", str(os.getpid())],
        cwd=REPO, stdin=subprocess.DEVNULL)
    telegram = TelegramProcess(process, settings.telegram_api_url)
    try:
        _wait_until_answering(telegram)
        wire(settings, f"http://{SANDBOX_HOST}:{settings.port}/webhook")
    except Exception:
        telegram.stop()
        raise
    return telegram


def wire(settings: Settings, webhook_url: str) -> None:
    """What an operator does once with a real bot (set-webhook, set-commands), and the demo's people."""
    client = BotApiClient(settings.telegram_api_url, settings.bot_token,
                          Timeouts(connect=settings.telegram_connect_timeout, read=settings.telegram_read_timeout))
    try:
        client.call("setWebhook", {
            "url": webhook_url, "secret_token": settings.webhook_secret, "allowed_updates": ALLOWED_UPDATES,
            "max_connections": MAX_WEBHOOK_CONNECTIONS})
        client.call("setMyCommands", {"commands": BOT_COMMANDS})
    except (TelegramError, TelegramUnavailable) as error:
        raise SandboxError(f"local sandbox: wiring the bot to the emulator failed: {error}") from None
    control = f"{settings.telegram_api_url}/control/user"
    for person in (DEMO_BUYER, *({"user_id": admin, "first_name": "Admin"} for admin in sorted(settings.admin_ids))):
        requests.post(control, json=person, timeout=(3.05, 5)).raise_for_status()


def ready_banner(settings: Settings) -> str:
    return (f"Local sandbox: no BOT_TOKEN, so Telegram is the Bot API emulator at {settings.telegram_api_url}.\n"
            f"Open http://{SANDBOX_HOST}:{settings.port}/ to talk to your bot, buy a plan with test Stars "
            "and watch the demo channel.")


def _require_free_port(port: int) -> None:
    """Refuse at once rather than wire the bot to whatever already listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((SANDBOX_HOST, port))
        except OSError:
            raise SandboxError(f"local sandbox: port {port} for the Telegram emulator is taken; "
                               "set SANDBOX_TELEGRAM_PORT to a free port") from None


def _wait_until_answering(telegram: TelegramProcess) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        if telegram.process.poll() is not None:
            raise SandboxError(f"local sandbox: the Telegram emulator exited with {telegram.process.returncode}")
        try:
            if requests.get(f"{telegram.url}/control/info", timeout=(1, 2)).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() >= deadline:
            raise SandboxError(f"local sandbox: the Telegram emulator did not answer within {READY_TIMEOUT_SECONDS:g}s")
        time.sleep(0.05)  # start-up polling with a deadline, not synchronisation
