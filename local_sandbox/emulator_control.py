"""The page's calls to the emulator's control surface (``/control/*``), with timeouts.

The page plays the user and Telegram itself: everything it does goes
through the emulator, which delivers the resulting update to the real
webhook. An action waits for that delivery (and a payment for the bot's
pre-checkout answer, up to Telegram's 10 s), hence the long read timeout.
"""
from __future__ import annotations

from typing import Any

import requests

CONNECT_TIMEOUT = 3.05
# The longest action: a pre-checkout answer (10 s), then the payment's delivery.
READ_TIMEOUT = 30.0


class ControlError(Exception):
    """The emulator refused an action (``status`` 400/404/408/409) or could not be reached (502)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class EmulatorControl:
    def __init__(self, telegram_url: str) -> None:
        self._base = f"{telegram_url.rstrip('/')}/control"

    def get(self, endpoint: str, **query: Any) -> Any:
        return self._request("GET", endpoint, params=query)

    def post(self, endpoint: str, **body: Any) -> Any:
        return self._request("POST", endpoint, json=body)

    def _request(self, method: str, endpoint: str, **arguments: Any) -> Any:
        try:
            response = requests.request(method, f"{self._base}/{endpoint}",
                                        timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **arguments)
            answer = response.json()
        except requests.RequestException as error:
            raise ControlError(502, f"the Telegram emulator at {self._base} did not answer "
                                    f"({type(error).__name__}); is the server running in local sandbox mode?") from None
        except ValueError:
            raise ControlError(502, f"the Telegram emulator answered {endpoint} with something that is not JSON") from None
        if not answer.get("ok"):
            raise ControlError(response.status_code, answer.get("error") or f"{endpoint} failed")
        return answer["result"]
