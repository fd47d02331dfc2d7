"""Outgoing Bot API calls: timeouts on every call, keep-alive per thread, no token in errors.

Handlers never call this: they enqueue calls in the outbox (or let one ride on
the webhook response). The outbox senders and the CLI call Telegram through
:class:`BotApiClient`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests

from observability.metrics import TELEGRAM_CALLS


class TelegramError(Exception):
    """Telegram answered and refused the call (``ok: false``)."""

    def __init__(self, method: str, code: int, description: str, retry_after: int | None = None):
        super().__init__(f"{method}: {code} {description}")
        self.method = method
        self.code = code
        self.description = description
        self.retry_after = retry_after

    @property
    def is_transient(self) -> bool:
        return self.code == 429 or self.code >= 500


class TelegramUnavailable(Exception):
    """No usable answer: connection failed, timed out, or the reply was not Telegram's JSON."""


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float


class BotApiClient:
    def __init__(self, base_url: str, token: str, timeouts: Timeouts):
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeouts = timeouts
        # requests.Session is not thread-safe; one keep-alive session per thread.
        self._local = threading.local()

    def call(self, method: str, params: dict | None = None, *, read_timeout: float | None = None) -> Any:
        """Call ``method`` and return its ``result``; raises TelegramError or TelegramUnavailable."""
        try:
            result = self._call(method, params, read_timeout)
        except TelegramError as error:
            TELEGRAM_CALLS.labels(method, _outcome_of(error.code)).inc()
            raise
        except TelegramUnavailable:
            TELEGRAM_CALLS.labels(method, "unavailable").inc()
            raise
        TELEGRAM_CALLS.labels(method, "ok").inc()
        return result

    def _call(self, method: str, params: dict | None, read_timeout: float | None) -> Any:
        timeout = (self._timeouts.connect, read_timeout or self._timeouts.read)
        try:
            response = self._session().post(self._url(method), json=params or {}, timeout=timeout)
        except requests.RequestException as exc:
            raise TelegramUnavailable(f"{method}: {type(exc).__name__}: {self.redact(str(exc))}") from None
        return self._result(method, response)

    def redact(self, text: str) -> str:
        return text.replace(self._token, "<bot-token>") if self._token else text

    def _url(self, method: str) -> str:
        return f"{self._base_url}/bot{self._token}/{method}"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _result(self, method: str, response: requests.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            raise TelegramUnavailable(f"{method}: HTTP {response.status_code} with a body that is not JSON") from None
        if not isinstance(body, dict) or "ok" not in body:
            raise TelegramUnavailable(f"{method}: HTTP {response.status_code} with an unexpected body")
        if body["ok"]:
            return body.get("result")
        parameters = body.get("parameters") or {}
        raise TelegramError(
            method,
            int(body.get("error_code") or response.status_code),
            self.redact(str(body.get("description", ""))),
            retry_after=parameters.get("retry_after"),
        )


def _outcome_of(code: int) -> str:
    if code == 429:
        return "rate_limited"
    return "server_error" if code >= 500 else "refused"
