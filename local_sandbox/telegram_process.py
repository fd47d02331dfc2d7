"""The sandbox's Telegram: the Bot API emulator in a process of its own.

    python -m local_sandbox.telegram_process --port 8001 --channel-id -1001000000001 --parent-pid 4242

Started by the gunicorn master (``launcher``). It serves until SIGTERM, or
until its parent is gone: a master killed with SIGKILL runs no hook, and an
orphaned emulator would keep the port.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time

from botapi_emulator import BotApiEmulator
from settings.sandbox import SANDBOX_BOT_TOKEN, SANDBOX_HOST

BOT_USERNAME = "sandbox_membership_bot"
CHANNEL_TITLE = "Demo Channel"
PARENT_CHECK_SECONDS = 0.5


def make_emulator(port: int, channel_id: int) -> BotApiEmulator:
    """The sandbox's Telegram; the tests of the page build theirs here too."""
    return BotApiEmulator(
        token=SANDBOX_BOT_TOKEN, channel_id=channel_id, host=SANDBOX_HOST, port=port,
        bot_username=BOT_USERNAME, channel_title=CHANNEL_TITLE,
        # The bot's ledger (instance/bot.sqlite3) outlives this process: update
        # ids must keep growing across runs, or new updates would read as
        # duplicates of the last run's.
        first_update_id=time.time_ns() // 1_000_000,
    )


def serve_until_orphaned(emulator: BotApiEmulator, parent_pid: int) -> None:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())  # Ctrl-C reaches the whole terminal's group
    with emulator:
        while not stopped.wait(PARENT_CHECK_SECONDS):
            if os.getppid() != parent_pid:
                break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_sandbox.telegram_process")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--channel-id", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="telegram emulator: %(levelname)s %(message)s")
    serve_until_orphaned(make_emulator(args.port, args.channel_id), args.parent_pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
