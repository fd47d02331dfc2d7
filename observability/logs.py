"""One log format for every process, and the bot token scrubbed from every line.

The token is part of every Bot API URL, so any exception from ``requests`` or
``urllib3`` can carry it; the formatter redacts the final text, tracebacks
included, rather than trusting every call site.
"""
from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s [pid %(process)d %(threadName)s] %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    def __init__(self, secrets: list[str]):
        super().__init__(FORMAT)
        # Very short strings would shred ordinary words; real tokens are long.
        self._secrets = [secret for secret in secrets if secret and len(secret) >= 8]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text


_handler: logging.Handler | None = None


def configure_logging(level: str, secrets: list[str]) -> None:
    """Idempotent: a second app in the same process replaces the handler, not adds one."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(RedactingFormatter(secrets))
    root.addHandler(_handler)
    root.setLevel(level)
    # urllib3 logs full request URLs (with the token) at DEBUG.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("TeleBot").setLevel(logging.WARNING)
