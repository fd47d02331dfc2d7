"""Operator commands: ``flask --app main <command>``."""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from bot_outbox.client import TelegramError, TelegramUnavailable
from membership import reconcile, sweep
from models.base import db
from settings import current_settings
from settings.telegram import MAX_WEBHOOK_CONNECTIONS
from telegram_handler import HANDLED_KINDS, STATELESS_KINDS, USER_COMMANDS

# chat_member must be listed explicitly: Telegram leaves it out of the default.
ALLOWED_UPDATES = sorted(HANDLED_KINDS | STATELESS_KINDS)


BOT_COMMANDS = [{"command": command, "description": description} for command, description in USER_COMMANDS]


def register(app: Flask) -> None:
    for command in (set_webhook, webhook_info, set_commands, sweep_command, reconcile_command):
        app.cli.add_command(command)


def _call(method: str, params: dict | None = None):
    client = current_app.extensions["telegram_client"]
    try:
        return client.call(method, params or {})
    except (TelegramError, TelegramUnavailable) as error:
        raise click.ClickException(str(error)) from None


def webhook_max_connections(workers: int, threads: int) -> int:
    """As many concurrent deliveries as request threads, within Telegram's 1-100."""
    return max(1, min(MAX_WEBHOOK_CONNECTIONS, workers * threads))


@click.command("set-webhook")
@with_appcontext
@click.argument("url")
@click.option("--drop-pending", is_flag=True, help="Discard updates Telegram is still holding.")
@click.option("--max-connections", type=click.IntRange(1, 100), default=None,
              help="Concurrent deliveries; default: workers x threads of this server.")
def set_webhook(url: str, drop_pending: bool, max_connections: int | None) -> None:
    """Register URL (https://<domain>/webhook) with Telegram, with our secret token."""
    settings = current_settings()
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
@with_appcontext
def webhook_info() -> None:
    """Print Telegram's view of the webhook: pending updates, last error."""
    click.echo(json.dumps(_call("getWebhookInfo"), indent=2, sort_keys=True))


@click.command("set-commands")
@with_appcontext
def set_commands() -> None:
    """Register the bot's command menu (once per deploy, not on every request)."""
    _call("setMyCommands", {"commands": BOT_COMMANDS})
    click.echo("command menu set: " + ", ".join("/" + c["command"] for c in BOT_COMMANDS))


@click.command("sweep")
@with_appcontext
@click.option("--at", "at", default=None, help="Evaluate expiries as of this ISO date-time (default: now, UTC).")
@click.option("--dry-run", is_flag=True, help="List what would happen; change nothing.")
def sweep_command(at: str | None, dry_run: bool) -> None:
    """Send due reminders and remove expired members (what the in-process timer does)."""
    settings = current_settings()
    report = sweep.run(db.session, settings, now=_parse_moment(at), dry_run=dry_run)
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    click.echo(report.summary())


@click.command("reconcile")
@with_appcontext
@click.option("--full", is_flag=True, help="Read every transaction again, not only those after the last run.")
def reconcile_command(full: bool) -> None:
    """Compare Telegram's Stars transactions with our ledger and apply what is missing."""
    try:
        report = reconcile.run(_cli_unit_of_work, current_app.extensions["telegram_client"], current_settings(),
                               full=full)
    except (TelegramError, TelegramUnavailable) as error:
        raise click.ClickException(str(error)) from None
    if report is None:
        raise click.ClickException("another reconciliation is running; try again in a few minutes")
    click.echo(report.summary())


@contextmanager
def _cli_unit_of_work() -> Iterator[Session]:
    """The command's own session, committed per unit, so no connection is held across a Telegram call."""
    try:
        yield db.session
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def _parse_moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date-time such as 2026-12-01T09:00", param_hint="--at")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
