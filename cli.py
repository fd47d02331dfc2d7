"""Operator commands: ``flask --app main <command>`` (or plain ``flask <command>``: see .flaskenv).

A thin list: each command parses its arguments, calls ``operations`` or the
domain, commits where it changes something, and prints. Every command logs
to stderr (its result goes to stdout) and reports a database or Telegram
outage in one line, not a traceback.
"""
from __future__ import annotations

import functools
import json
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

import click
from flask import Flask, current_app
from flask.cli import ScriptInfo, pass_script_info, with_appcontext
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot_outbox.client import TelegramError, TelegramUnavailable
from database import migrations
from database.errors import describe_error, is_transient
from membership import reconcile, sweep
from models.base import db
from models.broadcast import AUDIENCES
from observability import logs
from operations import broadcast, doctor, export, stacks, telegram_setup
from settings import current_settings, settings_of


def register(app: Flask) -> None:
    for command in (set_webhook, webhook_info, set_commands, sweep_command, reconcile_command,
                    doctor_command, export_command, stacks_command, migrate_command, broadcast_command):
        app.cli.add_command(command)


def operator_command(name: str):
    """A click command in the app context, logging to stderr, with outages told in one line."""
    def decorate(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            logs.to_stderr()
            try:
                return function(*args, **kwargs)
            except SQLAlchemyError as error:
                if not is_transient(error):
                    raise  # a bug: its traceback is the evidence
                raise click.ClickException(f"database unavailable: {describe_error(error)}") from None
            except (TelegramError, TelegramUnavailable) as error:
                raise click.ClickException(f"Telegram: {error}") from None
            except (telegram_setup.SetupError, stacks.StacksError, broadcast.BroadcastError) as error:
                raise click.ClickException(str(error)) from None
        return click.command(name)(with_appcontext(run))
    return decorate


def _telegram():
    return current_app.extensions["telegram_client"]


@operator_command("set-webhook")
@click.argument("url", required=False)
@click.option("--drop-pending", is_flag=True, help="Discard updates Telegram is still holding.")
@click.option("--max-connections", type=click.IntRange(1, 100), default=None,
              help="Concurrent deliveries; default: workers x threads of this server.")
def set_webhook(url: str | None, drop_pending: bool, max_connections: int | None) -> None:
    """Register URL (default: https://$RAILWAY_PUBLIC_DOMAIN/webhook) with Telegram, with our secret token."""
    settings = current_settings()
    url = telegram_setup.webhook_url(url, settings)
    params = telegram_setup.set_webhook_params(url, settings, drop_pending, max_connections)
    _telegram().call("setWebhook", params)
    click.echo(f"webhook set: {url} (allowed_updates={','.join(params['allowed_updates'])}, "
               f"max_connections={params['max_connections']})")


@operator_command("webhook-info")
def webhook_info() -> None:
    """Print Telegram's view of the webhook: pending updates, last error."""
    click.echo(json.dumps(_telegram().call("getWebhookInfo"), indent=2, sort_keys=True))


@operator_command("set-commands")
def set_commands() -> None:
    """Register the bot's command menu (once per deploy, not on every request)."""
    _telegram().call("setMyCommands", {"commands": telegram_setup.BOT_COMMANDS})
    click.echo("command menu set: " + ", ".join("/" + c["command"] for c in telegram_setup.BOT_COMMANDS))


@click.command("migrate")
@pass_script_info
def migrate_command(info: ScriptInfo) -> None:
    """Bring the schema to head (what the server does at start; Railway's pre-deploy step).

    Not in an app context of the command's own: the migration pushes one, and
    contexts are never nested. A database that does not answer is one line.
    """
    app = info.load_app()
    logs.to_stderr()
    try:
        migrations.upgrade_to_head(app, wait_seconds=settings_of(app).db_wait_at_start_seconds)
    except migrations.DatabaseUnreachable as error:
        raise click.ClickException(f"not migrated: {error}") from None
    click.echo("schema at head")


@operator_command("sweep")
@click.option("--at", "at", default=None, help="Evaluate expiries as of this ISO date-time (default: now, UTC).")
@click.option("--dry-run", is_flag=True, help="List what would happen; change nothing.")
def sweep_command(at: str | None, dry_run: bool) -> None:
    """Send due reminders and remove expired members (what the in-process timer does)."""
    report = sweep.run(db.session, current_settings(), now=_parse_moment(at), dry_run=dry_run)
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    click.echo(report.summary())


@operator_command("reconcile")
@click.option("--full", is_flag=True, help="Read every transaction again, not only those after the last run.")
def reconcile_command(full: bool) -> None:
    """Compare Telegram's Stars transactions with our ledger and apply what is missing."""
    report = reconcile.run(_cli_unit_of_work, _telegram(), current_settings(), full=full)
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


@operator_command("doctor")
def doctor_command() -> None:
    """Check the token, the channel rights, the webhook, the plans, the database and the budget."""
    checks = doctor.run(current_app._get_current_object())
    for check in checks:
        click.echo(check.line())
    if any(check.status == doctor.FAIL for check in checks):
        raise SystemExit(1)


@operator_command("export")
@click.argument("what", type=click.Choice(["members", "payments"]))
def export_command(what: str) -> None:
    """Write members or payments as CSV to stdout, with a header row."""
    try:
        rows = export.export(db.session, what, sys.stdout)
    finally:
        db.session.rollback()
    click.echo(f"exported {rows} {what}", err=True)


@operator_command("stacks")
def stacks_command() -> None:
    """Make every worker of the running server log its threads' stacks (SIGUSR2 to workers only)."""
    socket_path = current_settings().control_socket
    server = stacks.find_server(socket_path)
    signalled = stacks.request_dumps(server)
    click.echo(f"asked workers {', '.join(map(str, signalled)) or '(none)'} of master {server.master_pid} "
               f"(control socket {socket_path}) for their stacks; they are in the server's log")


@operator_command("broadcast")
@click.argument("text", required=False)
@click.option("--to", "audience", type=click.Choice(AUDIENCES), default="active", show_default=True,
              help="active: members now; expired: had a membership, not now; all: everyone who talked to the bot.")
@click.option("--resume", is_flag=True,
              help="Queue what an earlier run did not: the latest broadcast with this text and audience, or --id.")
@click.option("--id", "broadcast_id", type=click.IntRange(1), default=None, help="With --resume: this broadcast.")
@click.option("--no-wait", is_flag=True, help="Queue and return; the running server sends.")
@click.option("--stall-seconds", type=click.FloatRange(1), default=120, show_default=True,
              help="Stop following when nothing is delivered for this long.")
def broadcast_command(text: str | None, audience: str, resume: bool, broadcast_id: int | None, no_wait: bool,
                      stall_seconds: float) -> None:
    """Send TEXT to an audience through the outbox, once per recipient; the server must be running to send.

    Users who blocked the bot are skipped and marked. Ctrl-C stops following,
    not sending: the server goes on, and --resume queues what was not queued.
    """
    target = _broadcast_target(text, audience, resume, broadcast_id)
    queued = broadcast.queue_all(db.session, target)
    broadcast_id, audience = target.id, target.audience
    db.session.rollback()  # the reads above opened a transaction: nothing is held while following
    click.echo(f"broadcast {broadcast_id} to {audience}: {queued} newly queued", err=True)
    if no_wait:
        click.echo(f"broadcast {broadcast_id}: queued; the running server sends it")
        return
    try:
        final = broadcast.follow(lambda: _read_progress(broadcast_id), _progress_printer(),
                                 stall_seconds=stall_seconds)
    except broadcast.Stalled as stalled:
        raise click.ClickException(f"{stalled} (broadcast {broadcast_id} goes on when the server runs)") from None
    except KeyboardInterrupt:
        click.echo(f"\nstopped following broadcast {broadcast_id}; the server goes on sending", err=True)
        raise SystemExit(130) from None
    click.echo(f"broadcast {broadcast_id}: {final.sent} sent, {final.failed} failed of {final.total}")


def _broadcast_target(text: str | None, audience: str, resume: bool, broadcast_id: int | None):
    if broadcast_id is not None and not resume:
        raise click.UsageError("--id names the broadcast to --resume")
    if not text and broadcast_id is None:
        raise click.UsageError("give the TEXT to send (or --resume --id N)")
    if not resume:
        return broadcast.create(db.session, text, audience)
    return broadcast.find_to_resume(db.session, broadcast_id, text, audience)


def _read_progress(broadcast_id: int) -> broadcast.Progress:
    """One short transaction per reading: no connection is held between polls."""
    try:
        return broadcast.progress(db.session, broadcast_id)
    finally:
        db.session.rollback()


def _progress_printer():
    """A bar redrawn in place on a terminal; otherwise a plain line whenever the count moves."""
    tty = sys.stderr.isatty()
    last = []

    def show(progress: broadcast.Progress, rate: float | None) -> None:
        line = broadcast.progress_line(progress, rate)
        if tty:
            click.echo("\r" + line, nl=progress.done, err=True)
        elif not last or last[-1] != progress.finished or progress.done:
            click.echo(line, err=True)
            last.append(progress.finished)
    return show


def _parse_moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date-time such as 2026-12-01T09:00", param_hint="--at")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
