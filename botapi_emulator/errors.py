"""Telegram's error answers, as exceptions the method handlers raise.

Why exceptions: a handler reads like the rule it enforces
(``raise bad_request("chat not found")``) and the bot surface turns the
exception into the exact JSON shape Telegram answers with.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TelegramError(Exception):
    """An error answer: HTTP status, ``error_code`` and ``description``."""

    error_code: int
    description: str
    retry_after: int | None = None

    def __str__(self) -> str:
        return f"{self.error_code} {self.description}"

    def to_json(self) -> dict:
        body = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {detail}")


def forbidden(detail: str) -> TelegramError:
    return TelegramError(403, f"Forbidden: {detail}")


def unauthorized() -> TelegramError:
    return TelegramError(401, "Unauthorized")


def not_found() -> TelegramError:
    return TelegramError(404, "Not Found")


def conflict(detail: str) -> TelegramError:
    return TelegramError(409, f"Conflict: {detail}")


def too_many_requests(retry_after: int) -> TelegramError:
    return TelegramError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


_SERVER_ERROR_NAMES = {
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def server_error(status: int) -> TelegramError:
    return TelegramError(status, _SERVER_ERROR_NAMES.get(status, "Internal Server Error"))


class EmulatorStopping(Exception):
    """Raised inside a held request when the emulator stops: the connection is dropped unanswered."""
