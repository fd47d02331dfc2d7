"""The bot surface: ``/bot<token>/<method>`` calls, checked, executed, answered, recorded.

Order of checks follows Telegram: the token (401), the method (404), then the
parameters (400), then the method's own rules.  Strict mode (the default)
refuses unknown methods and mistyped parameters; non-strict mode answers
``true`` to unknown methods (for calls newer than the bundled spec) and
passes mistyped values through.  Unknown extra parameters are ignored, as on
Telegram, but kept in the recorded call.  Known methods without a stateful
implementation answer ``true``, or a plain Message for the send* methods.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Callable

from . import methods_bot, methods_chats, methods_messages, methods_payments
from .errors import EmulatorStopping, TelegramError, bad_request, not_found, server_error, unauthorized
from .faults import FaultInjector
from .methods_common import Described, MethodContext
from .recorder import Call, CallRecorder
from .spec import SchemaError, canonical_method_name, coerce_param, method_params, method_return_kind
from .state import TelegramState

logger = logging.getLogger(__name__)

Handler = Callable[[MethodContext], Any]
HANDLERS: dict[str, Handler] = {
    **methods_bot.HANDLERS,
    **methods_messages.HANDLERS,
    **methods_payments.HANDLERS,
    **methods_chats.HANDLERS,
}


@dataclass
class BotResponse:
    status: int
    body: dict


class BotSurface:
    def __init__(self, token: str, state: TelegramState, recorder: CallRecorder, faults: FaultInjector,
                 notify: Callable[[Callable[[int], dict]], None], strict: bool = True) -> None:
        self.token = token
        self.strict = strict
        self._state = state
        self._recorder = recorder
        self._faults = faults
        self._notify = notify

    def handle_http(self, token: str, method: str, raw_params: dict[str, Any]) -> BotResponse:
        """A call over HTTP: faults and latency apply. Raises EmulatorStopping to drop the connection."""
        response, _ = self._execute(token, method, raw_params, via_webhook_response=False)
        return response

    def execute_from_webhook_response(self, params: dict[str, Any]) -> Call:
        """A method riding on a webhook answer: executed, recorded, its outcome told to no one."""
        raw_params = dict(params)
        method = str(raw_params.pop("method"))
        _, call = self._execute(self.token, method, raw_params, via_webhook_response=True)
        return call

    def _execute(self, token: str, method: str, raw_params: dict[str, Any],
                 via_webhook_response: bool) -> tuple[BotResponse, Call]:
        canonical = canonical_method_name(method) or method
        params = dict(raw_params)
        context = None
        try:
            if token != self.token:
                raise unauthorized()
            if canonical_method_name(method) is None and self.strict:
                raise not_found()
            if not via_webhook_response:
                self._faults.before_call(canonical)
            params = self._typed_params(canonical, raw_params)
            context = MethodContext(self._state, canonical, params, via_webhook_response)
            response = self._run(context)
        except TelegramError as error:
            response = BotResponse(error.error_code, error.to_json())
        except EmulatorStopping:
            raise
        except Exception:
            logger.exception("emulator bug while executing %s", canonical)
            response = BotResponse(500, server_error(500).to_json())
        call = self._recorder.record(
            canonical, params, via_webhook_response, response.body["ok"],
            response.body.get("result") if response.body["ok"] else _error_summary(response.body),
            response.status,
        )
        if context is not None and response.body["ok"]:
            for build_update in context.emitted:
                self._notify(build_update)
        return response, call

    def _run(self, context: MethodContext) -> BotResponse:
        handler = HANDLERS.get(context.method, _generic_handler)
        with self._state.lock:
            # A snapshot: the stored message may be edited later, the answer and the record must not change.
            outcome = copy.deepcopy(handler(context))
        if isinstance(outcome, Described):
            return BotResponse(200, {"ok": True, "result": outcome.result, "description": outcome.description})
        return BotResponse(200, {"ok": True, "result": outcome})

    def _typed_params(self, method: str, raw_params: dict[str, Any]) -> dict[str, Any]:
        """Type every documented parameter; unknown ones pass through untouched."""
        if canonical_method_name(method) is None:
            return dict(raw_params)
        typed = dict(raw_params)
        for name, spec in method_params(method).items():
            if name not in raw_params:
                if spec["required"]:
                    raise bad_request(f"{name} is empty")
                continue
            try:
                typed[name] = coerce_param(name, raw_params[name], spec["type"])
            except SchemaError as error:
                if self.strict:
                    raise bad_request(str(error)) from None
        return typed


def _generic_handler(context: MethodContext) -> Any:
    """Known but not modelled: a send* method returns a Message, anything else ``true``."""
    if method_return_kind(context.method) == "Message" and "chat_id" in context.params:
        return methods_messages.send_any_message(context)
    return True


def _error_summary(body: dict) -> dict:
    return {"error_code": body["error_code"], "description": body["description"]}
