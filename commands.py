"""Operator commands: ``flask --app main <command>``."""
from __future__ import annotations

import json

import click
from flask import Flask, current_app

from telegram_client import TelegramError, TelegramUnavailable
from telegram_handler import HANDLED_KINDS

# chat_member must be listed explicitly: Telegram leaves it out of the default.
ALLOWED_UPDATES = sorted(HANDLED_KINDS)


def register(app: Flask) -> None:
    app.cli.add_command(set_webhook)
    app.cli.add_command(webhook_info)


def _call(method: str, params: dict | None = None):
    client = current_app.extensions["telegram_client"]
    try:
        return client.call(method, params or {})
    except (TelegramError, TelegramUnavailable) as error:
        raise click.ClickException(str(error)) from None


def webhook_max_connections(workers: int, threads: int) -> int:
    """As many concurrent deliveries as request threads, within Telegram's 1-100."""
    return max(1, min(100, workers * threads))


@click.command("set-webhook")
@click.argument("url")
@click.option("--drop-pending", is_flag=True, help="Discard updates Telegram is still holding.")
@click.option("--max-connections", type=click.IntRange(1, 100), default=None,
              help="Concurrent deliveries; default: workers x threads of this server.")
def set_webhook(url: str, drop_pending: bool, max_connections: int | None) -> None:
    """Register URL (https://<domain>/webhook) with Telegram, with our secret token."""
    settings = current_app.config["SETTINGS"]
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
        raise click.BadParameter("Telegram only delivers to https:// URLs", param_hint="URL")
    if not settings.webhook_secret:
        raise click.ClickException("WEBHOOK_SECRET is not set")
    params = {
        "url": url,
        "secret_token": settings.webhook_secret,
        "allowed_updates": ALLOWED_UPDATES,
        "max_connections": max_connections or webhook_max_connections(
            settings.web_concurrency, settings.gunicorn_threads),
        "drop_pending_updates": drop_pending,
    }
    _call("setWebhook", params)
    click.echo(f"webhook set: {url} (allowed_updates={','.join(ALLOWED_UPDATES)}, "
               f"max_connections={params['max_connections']})")


@click.command("webhook-info")
def webhook_info() -> None:
    """Print Telegram's view of the webhook: pending updates, last error."""
    click.echo(json.dumps(_call("getWebhookInfo"), indent=2, sort_keys=True))
