"""The environment a test, benchmark or soak gives the server it starts."""
from __future__ import annotations

BOT_TOKEN = "123456:TEST-token_for-the-suite"
WEBHOOK_SECRET = "suite-secret_0123456789"
CHANNEL_ID = -1001000000001
ADMIN_ID = 9000


def make_env(database_url: str | None, api_url: str, **extra: str) -> dict[str, str]:
    """Settings for a server whose Telegram is the emulator at ``api_url``."""
    env = {
        "BOT_TOKEN": BOT_TOKEN,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELEGRAM_API_URL": api_url,
        "CHANNEL_ID": str(CHANNEL_ID),
        "ADMIN_IDS": str(ADMIN_ID),
        "OUTBOX_SENDERS": "2",
        **extra,
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    return env
