"""The local sandbox's fixed facts: what stands in for Telegram when there is no BOT_TOKEN.

Local sandbox mode is the README's first command on a fresh clone: the
embedded SQLite database and no ``BOT_TOKEN``. Telegram is then the Bot API
emulator that the gunicorn master starts (``local_sandbox/``), on 127.0.0.1
at ``SANDBOX_TELEGRAM_PORT`` (default ``PORT + 1``), with a made-up bot
token, a demo channel and one admin. A ``BOT_TOKEN`` always means a real
bot: the sandbox never starts then, whatever the database.
"""
from __future__ import annotations

from typing import Mapping

from settings.env_values import ConfigError, chat_id, user_ids, whole_number

SANDBOX_HOST = "127.0.0.1"
# The emulator checks the token in every call's URL like Telegram does; this
# one only ever reaches the emulator.
SANDBOX_BOT_TOKEN = "5550001:local-sandbox"
SANDBOX_CHANNEL_ID = -1001000000001
SANDBOX_ADMIN_ID = 1000


def is_sandbox(bot_token: str, database_url: str) -> bool:
    return not bot_token and database_url.startswith("sqlite")


def sandbox_values(env: Mapping[str, str], port: int) -> dict:
    """The settings local sandbox mode fixes: Telegram is the emulator next to the server."""
    telegram_port = whole_number(env, "SANDBOX_TELEGRAM_PORT", port + 1 if port < 65535 else port - 1, 1, 65535)
    if telegram_port == port:
        raise ConfigError(f"SANDBOX_TELEGRAM_PORT={telegram_port} is also PORT: the emulator needs a port of its own")
    return dict(
        local_sandbox=True,
        sandbox_telegram_port=telegram_port,
        bot_token=SANDBOX_BOT_TOKEN,
        telegram_api_url=f"http://{SANDBOX_HOST}:{telegram_port}",
        channel_id=chat_id(env.get("CHANNEL_ID")) or SANDBOX_CHANNEL_ID,
        admin_ids=user_ids(env.get("ADMIN_IDS", ""), "ADMIN_IDS") or frozenset({SANDBOX_ADMIN_ID}),
    )
