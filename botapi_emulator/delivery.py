"""Webhook delivery the way Telegram does it.

What it reproduces, because the bot's webhook code depends on each point:
- the update is POSTed as JSON to the URL from setWebhook, with
  ``X-Telegram-Bot-Api-Secret-Token`` when a secret was set;
- kinds outside ``allowed_updates`` are not sent (an empty list means every
  kind except chat_member, message_reaction and message_reaction_count);
- anything but a 2xx answer, a timeout or a refused connection is retried
  with back-off, under the same ``update_id`` (the bot's dedupe key);
- at most ``max_connections`` deliveries are in flight at once;
- a 2xx answer whose body names a ``method`` has that method executed, and
  its outcome is reported to no one;
- getWebhookInfo shows ``pending_update_count`` and the last error;
- ``drop_pending_updates`` stops retries of updates already pending.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import requests

from settings.telegram import SECRET_HEADER

from .params import parse_body
from .recorder import Call
from .spec import default_update_kinds
from .state import TelegramState
from .updates import update_kind

DEFAULT_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


class NoWebhookError(RuntimeError):
    """An update was to be delivered but the bot has not called setWebhook."""


@dataclass
class Attempt:
    number: int
    started_at: float
    status: int | None
    error: str | None


@dataclass
class DeliveryResult:
    """What became of one update.

    ``outcome`` is ``acknowledged`` (a 2xx answer), ``gave_up`` (max_attempts
    failed), ``filtered`` (kind not in allowed_updates: never sent),
    ``dropped`` (drop_pending_updates while retrying), ``webhook_deleted``
    or ``stopped`` (the emulator stopped while retrying).
    """

    update_id: int
    update: dict
    outcome: str
    attempts: int = 0
    status: int | None = None
    body: str | None = None
    acknowledged_at: float | None = None
    error: str | None = None
    response_call: Call | None = None
    attempt_log: list[Attempt] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return self.outcome == "acknowledged"

    def to_json(self) -> dict:
        return {
            "update_id": self.update_id,
            "update": self.update,
            "outcome": self.outcome,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "status": self.status,
            "body": self.body,
            "acknowledged_at": self.acknowledged_at,
            "error": self.error,
            "response_call": self.response_call.to_json() if self.response_call else None,
            "attempt_log": [vars(attempt) for attempt in self.attempt_log],
        }


ResponseMethodExecutor = Callable[[dict], "Call | None"]


class WebhookDelivery:
    def __init__(self, state: TelegramState, execute_response_method: ResponseMethodExecutor,
                 retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS, max_attempts: int = 5,
                 timeout: float = 10.0, first_update_id: int = 100_000_001) -> None:
        if not retry_delays or max_attempts < 1:
            raise ValueError("need at least one retry delay and max_attempts >= 1")
        self._state = state
        self._execute_response_method = execute_response_method
        self.retry_delays = tuple(retry_delays)
        self.max_attempts = max_attempts
        self.timeout = timeout
        self._id_lock = threading.Lock()
        self._next_update_id = first_update_id
        self._sent: dict[int, dict] = {}
        self._in_flight = 0
        self._slots = threading.Condition()
        self._stopping = threading.Event()
        self._sessions: list[requests.Session] = []
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=100, thread_name_prefix="botapi-emulator-delivery")

    # --- update ids -------------------------------------------------------------------------

    def allocate_update_id(self) -> int:
        """Update ids only grow, like Telegram's."""
        with self._id_lock:
            update_id = self._next_update_id
            self._next_update_id += 1
            return update_id

    def _assign_update_id(self, update: dict) -> dict:
        if "update_id" not in update:
            return {"update_id": self.allocate_update_id(), **update}
        with self._id_lock:
            self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
        return update

    def sent_update(self, update_id: int) -> dict:
        with self._id_lock:
            if update_id not in self._sent:
                raise KeyError(f"no update {update_id} was delivered")
            return self._sent[update_id]

    # --- delivering -------------------------------------------------------------------------

    def deliver(self, update: dict) -> DeliveryResult:
        """Send one update (update_id assigned when missing) and retry until acknowledged or given up."""
        update = self._assign_update_id(update)
        with self._state.lock:
            webhook = self._state.webhook
            if not webhook.url:
                raise NoWebhookError(
                    "the bot has not set a webhook (no setWebhook call yet): "
                    "wait_for_call('setWebhook') before delivering updates"
                )
            allowed = set(webhook.allowed_updates) or default_update_kinds()
            generation = webhook.drop_generation
        with self._id_lock:
            self._sent[update["update_id"]] = update
        if update_kind(update) not in allowed:
            return DeliveryResult(update["update_id"], update, outcome="filtered")
        with self._state.lock:
            self._state.pending_update_count += 1
        try:
            return self._deliver_with_retries(update, generation)
        finally:
            with self._state.lock:
                self._state.pending_update_count -= 1

    def deliver_async(self, update: dict) -> Future:
        """Deliver in the background; the Future yields the DeliveryResult."""
        return self._executor.submit(self.deliver, self._assign_update_id(update))

    def notify_async(self, build_update: Callable[[int], dict]) -> None:
        """Deliver an update Telegram sends on its own (chat_member after a ban...), if a webhook listens.

        ``build_update`` gets the update_id; nothing is built or allocated without a webhook.
        """
        with self._state.lock:
            if not self._state.webhook.url or self._stopping.is_set():
                return
        self.deliver_async(build_update(self.allocate_update_id()))

    def redeliver(self, update_id: int) -> DeliveryResult:
        """Send an already delivered update again, same update_id (Telegram does after a lost answer)."""
        return self.deliver(self.sent_update(update_id))

    def stop(self) -> None:
        self._stopping.set()
        with self._slots:
            self._slots.notify_all()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for session in list(self._sessions):
            session.close()

    # --- internals --------------------------------------------------------------------------

    def _deliver_with_retries(self, update: dict, generation: int) -> DeliveryResult:
        result = DeliveryResult(update["update_id"], update, outcome="gave_up")
        for attempt_number in range(1, self.max_attempts + 1):
            if attempt_number > 1:
                delay = self.retry_delays[min(attempt_number - 2, len(self.retry_delays) - 1)]
                if self._stopping.wait(delay):
                    result.outcome = "stopped"
                    return result
            stop_reason = self._reason_to_stop_retrying(generation)
            if stop_reason:
                result.outcome = stop_reason
                return result
            if self._attempt(update, attempt_number, result):
                result.outcome = "acknowledged"
                return result
        return result

    def _reason_to_stop_retrying(self, generation: int) -> str | None:
        if self._stopping.is_set():
            return "stopped"
        with self._state.lock:
            if not self._state.webhook.url:
                return "webhook_deleted"
            if self._state.webhook.drop_generation != generation:
                return "dropped"
        return None

    def _attempt(self, update: dict, attempt_number: int, result: DeliveryResult) -> bool:
        """POST once; True when the webhook acknowledged with a 2xx."""
        with self._state.lock:
            url = self._state.webhook.url
            secret = self._state.webhook.secret_token
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SECRET_HEADER] = secret
        result.attempts = attempt_number
        attempt = Attempt(attempt_number, time.time(), None, None)
        result.attempt_log.append(attempt)
        self._acquire_slot()
        try:
            response = self._session().post(url, json=update, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            attempt.error = result.error = "Read timeout expired"
        except requests.RequestException as error:
            attempt.error = result.error = f"Connection failed: {type(error).__name__}"
        else:
            attempt.status = result.status = response.status_code
            result.body = response.text
            if 200 <= response.status_code < 300:
                result.acknowledged_at = time.time()
                result.error = None
                result.response_call = self._run_response_method(response)
                return True
            attempt.error = result.error = f"Wrong response from the webhook: {response.status_code} {response.reason}"
        finally:
            self._release_slot()
        self._record_error(result.error)
        return False

    def _run_response_method(self, response: requests.Response) -> Call | None:
        try:
            params = parse_body(response.headers.get("Content-Type"), response.content)
        except Exception:  # Telegram ignores an answer body it cannot read
            return None
        if not isinstance(params.get("method"), str):
            return None
        return self._execute_response_method(params)

    def _record_error(self, message: str | None) -> None:
        with self._state.lock:
            self._state.webhook.last_error_date = self._state.clock.now()
            self._state.webhook.last_error_message = message

    def _acquire_slot(self) -> None:
        """Never more than max_connections deliveries at once, as Telegram promises."""
        with self._slots:
            while self._in_flight >= self._max_connections() and not self._stopping.is_set():
                self._slots.wait(0.5)
            self._in_flight += 1

    def _release_slot(self) -> None:
        with self._slots:
            self._in_flight -= 1
            self._slots.notify()

    def _max_connections(self) -> int:
        with self._state.lock:
            return self._state.webhook.max_connections

    def _session(self) -> requests.Session:
        """One keep-alive session per delivery thread, like Telegram's persistent connections."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._id_lock:
                self._sessions.append(session)
        return session
