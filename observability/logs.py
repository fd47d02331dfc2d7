"""One log format for every process, and the bot token scrubbed from every line.

Two formats, chosen by ``LOG_FORMAT`` (settings): ``text`` on stderr for a
person at a terminal, and ``json`` on stdout for Railway, which reads one JSON
object per line and marks stderr lines as errors. A JSON line carries level,
logger, message, time, pid and thread, the ``update_id`` and ``user_id`` the
thread is handling (the watchdog's in-flight map, set by the webhook), and a
stack inside the object, never as lines of its own.

gunicorn's own lines go through the same handler: ``gunicorn.conf.py`` hands
:func:`gunicorn_logconfig` to gunicorn's ``logconfig_dict``.

The token is part of every Bot API URL, so any exception from ``requests`` or
``urllib3`` can carry it; the formatter redacts the final text, tracebacks
included, rather than trusting every call site.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import TextIO

from gunicorn import glogging
from pythonjsonlogger.json import JsonFormatter

from observability import watchdog

TEXT_FORMAT = "%(asctime)s %(levelname)s [pid %(process)d %(threadName)s] %(name)s: %(message)s"
JSON_FIELDS = ("levelname", "name", "message", "asctime", "process", "threadName")
JSON_NAMES = {"levelname": "level", "name": "logger", "asctime": "time", "process": "pid",
              "threadName": "thread", "exc_info": "stack"}
REDACTED = "<redacted>"


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _usable_secrets(secrets: list[str | None]) -> list[str]:
    # Very short strings would shred ordinary words; real tokens are long.
    return [secret for secret in secrets if secret and len(secret) >= 8]


class RedactingFormatter(logging.Formatter):
    """The text format: one line, then the traceback's lines, if any."""

    def __init__(self, secrets: list[str | None]):
        super().__init__(TEXT_FORMAT)
        self._secrets = _usable_secrets(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return _scrub(super().format(record), self._secrets)


class RedactingJsonFormatter(JsonFormatter):
    """The JSON format: one object per record, one record per line, whatever it holds."""

    def __init__(self, secrets: list[str | None]):
        super().__init__(list(JSON_FIELDS), rename_fields=JSON_NAMES, json_ensure_ascii=False)
        self._secrets = _usable_secrets(secrets)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_data, record, message_dict)
        update = watchdog.in_flight().get(record.thread)
        if update is not None:
            log_data["update_id"] = update.update_id
            if update.user_id is not None:
                log_data["user_id"] = update.user_id

    def format(self, record: logging.LogRecord) -> str:
        # Tokens are [A-Za-z0-9:_-]: JSON escapes none of them, so the text can be scrubbed as is.
        return _scrub(super().format(record), self._secrets)


def make_formatter(log_format: str, secrets: list[str | None]) -> logging.Formatter:
    return RedactingJsonFormatter(secrets) if log_format == "json" else RedactingFormatter(secrets)


def stream_for(log_format: str) -> TextIO:
    return sys.stdout if log_format == "json" else sys.stderr


def make_handler(log_format: str, secrets: list[str | None], stream: TextIO | None = None) -> logging.Handler:
    """Our handler, marked so a later configuration replaces it instead of adding a second one."""
    handler = logging.StreamHandler(stream or stream_for(log_format))
    handler.setFormatter(make_formatter(log_format, secrets))
    handler.bot_handler = True  # type: ignore[attr-defined]
    return handler


def configure_logging(level: str, secrets: list[str | None], log_format: str = "text") -> None:
    """Idempotent: a second app in the same process replaces our handler, not adds one."""
    install_handler(make_handler(log_format, secrets))
    logging.getLogger().setLevel(level)
    # urllib3 logs full request URLs (with the token) at DEBUG.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("TeleBot").setLevel(logging.WARNING)


def install_handler(handler: logging.Handler) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "bot_handler", False)]:
        root.removeHandler(old)
    root.addHandler(handler)


def to_stderr() -> None:
    """For CLI commands, whose results go to stdout (a CSV export must not hold log lines)."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "bot_handler", False) and isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


class GunicornLogger(glogging.Logger):
    """gunicorn's logger, writing access lines only when ``accesslog`` asks for them.

    With ``logconfig_dict`` set, gunicorn builds every request's access-log
    atoms even though no access log is configured: about 3% of a worker's
    CPU under load (a py-spy profile of the webhook benchmark), for lines
    nobody reads.
    """

    def access(self, resp, req, environ, request_time):
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)


def gunicorn_logconfig(level: str, log_format: str, secrets: list[str | None]) -> dict:
    """gunicorn's ``logconfig_dict``: its error and access lines through our handler.

    gunicorn merges this over its defaults; the root logger gets our handler
    here (so gunicorn's lines before the app loads are formatted too) and the
    app's configure_logging later replaces it with an identical one.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": level, "handlers": ["bot"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": level, "handlers": [], "propagate": True},
        },
        "handlers": {
            "bot": {"()": "observability.logs.make_handler", "log_format": log_format, "secrets": list(secrets)},
        },
        "formatters": {},
    }
