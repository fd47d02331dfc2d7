"""Telling Telegram about this server: the webhook URL and registration, the command menu."""
from __future__ import annotations

from urllib.parse import urlsplit

from settings import Settings
from settings.telegram import MAX_WEBHOOK_CONNECTIONS
from telegram_handler import HANDLED_KINDS, STATELESS_KINDS, USER_COMMANDS

# chat_member must be listed explicitly: Telegram leaves it out of the default.
ALLOWED_UPDATES = sorted(HANDLED_KINDS | STATELESS_KINDS)
BOT_COMMANDS = [{"command": command, "description": description} for command, description in USER_COMMANDS]
LOOPBACK_PREFIX = "http://127.0.0.1"  # the emulator and local tests; Telegram itself wants https


class SetupError(ValueError):
    """A value an operator gave (or left out) that Telegram could not use; one line."""


def webhook_url(given: str | None, settings: Settings) -> str:
    """The URL given, else ``https://$RAILWAY_PUBLIC_DOMAIN/webhook``; refused unless it names a host."""
    if not given:
        if not settings.public_domain:
            raise SetupError("no URL given and RAILWAY_PUBLIC_DOMAIN is not set (generate a domain for the "
                             "service, or run: flask set-webhook https://<your-domain>/webhook)")
        given = f"https://{settings.public_domain}/webhook"
    if not given.startswith("https://") and not given.startswith(LOOPBACK_PREFIX):
        raise SetupError(f"{given!r}: Telegram only delivers to https:// URLs")
    parts = urlsplit(given)
    if not parts.hostname:
        raise SetupError(f"{given!r} names no host (is RAILWAY_PUBLIC_DOMAIN empty?)")
    return given


def set_webhook_params(url: str, settings: Settings, drop_pending: bool, max_connections: int | None) -> dict:
    if not settings.webhook_secret:
        raise SetupError("WEBHOOK_SECRET is not set")
    return {
        "url": url,
        "secret_token": settings.webhook_secret,
        "allowed_updates": ALLOWED_UPDATES,
        "max_connections": max_connections or MAX_WEBHOOK_CONNECTIONS,
        "drop_pending_updates": drop_pending,
    }
