"""POST /webhook: Telegram's updates in, one transaction each, 2xx only once committed.

Answer policy (Telegram redelivers anything not 2xx, and an update it keeps
redelivering blocks that chat's queue):
- bad secret 401, too large 413, not JSON 415, not an update 400;
- effects committed (or a duplicate of committed ones): 200, maybe carrying
  one Bot API call in the body;
- database or pool outage: 503 with Retry-After, nothing half-written, so
  Telegram delivers again later;
- a handler bug: the update goes to the dead-letter table and we answer 200.
"""
from __future__ import annotations

import hmac
import json
import logging

import sqlalchemy.exc
from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

import telegram_handler
from bot_outbox import jobs
from database.errors import describe_error, is_outage, is_transient
from models.base import db
from observability import watchdog
from observability.metrics import WEBHOOK_SECONDS, WEBHOOK_UPDATES
from settings import current_settings
from settings.telegram import SECRET_HEADER
from telegram_updates import shape
from telegram_updates.dead_letters import quarantine
from telegram_updates.users import sender_of

bp = Blueprint("webhook", __name__)
log = logging.getLogger(__name__)

MAX_UPDATE_ID = 2**63 - 1


class BadUpdate(ValueError):
    pass


@bp.post("/webhook")
def receive_update():
    if not _secret_matches(request.headers.get(SECRET_HEADER, "")):
        return _rejected(401, "missing or wrong secret token")
    if request.mimetype != "application/json":
        return _rejected(415, "expected application/json")
    try:
        raw = _read_update(request.get_data(cache=False))
    except BadUpdate as exc:
        return _rejected(400, str(exc))
    if "pre_checkout_query" in raw:
        WEBHOOK_UPDATES.labels("pre_checkout").inc()
        return _answer_pre_checkout(raw)
    if current_app.extensions["db_probe"].known_down():
        WEBHOOK_UPDATES.labels("unavailable").inc()
        return _unavailable()
    with watchdog.tracking(raw["update_id"], _sender_id(raw)), WEBHOOK_SECONDS.time():
        return _apply(raw)


def _sender_id(raw: dict) -> int | None:
    """Who sent the update, for log lines and stack dumps (None for kinds without a sender)."""
    kind = next((key for key in raw if key != "update_id"), None)
    sender = sender_of(raw, kind) if kind else None
    return sender["id"] if sender else None


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_error):
    return _rejected(413, f"an update is at most {current_app.config['MAX_CONTENT_LENGTH']} bytes")


def _answer_pre_checkout(raw: dict) -> Response:
    """Answered before and without the database: Telegram allows 10 s, whatever our DB does.

    Answering twice is harmless, so no dedupe. Whatever the handler leaves
    for afterwards (noting the checkout, best effort) runs once the answer is sent.
    """
    try:
        answer, afterwards = telegram_handler.answer_pre_checkout(raw)
    except (KeyError, TypeError, ValueError, AttributeError):
        return _rejected(400, "malformed pre_checkout_query")
    response = jsonify(answer)
    if afterwards is not None:
        app = current_app._get_current_object()
        response.call_on_close(lambda: afterwards(app))
    return response


def _apply(raw: dict) -> Response:
    update_id = raw["update_id"]
    try:
        outcome = telegram_handler.handle_update(raw)
        if outcome.used_session:
            db.session.commit()
    except Exception as error:
        db.session.rollback()
        if is_transient(error):
            return _outage(update_id, error)
        log.exception("update %s: handler failed; stored as a dead letter", update_id)
        return _quarantine(raw, error)
    WEBHOOK_UPDATES.labels("duplicate" if outcome.duplicate else "processed").inc()
    if outcome.used_session:
        _wake_senders()
    if outcome.webhook_response:
        return jsonify(outcome.webhook_response)
    return Response(status=200)


def _quarantine(raw: dict, error: BaseException) -> Response:
    try:
        quarantine(db.session, current_settings(), raw, error)
        db.session.commit()
    except Exception as store_error:
        db.session.rollback()
        if is_transient(store_error):
            return _outage(raw["update_id"], store_error)
        raise
    WEBHOOK_UPDATES.labels("dead_letter").inc()
    _wake_senders()
    return Response(status=200)


def _wake_senders() -> None:
    """After a commit: as many senders as the transaction queued jobs."""
    queued = jobs.take_enqueued_count(db.session)
    if queued:
        current_app.extensions["outbox_sender"].notify(queued)


def _outage(update_id: int, error: BaseException) -> Response:
    description = describe_error(error)
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        current_app.extensions["pool_timeouts"].record()  # the pool is exhausted, the database may be fine
    elif is_outage(error):
        current_app.extensions["db_probe"].report_failure(description)
    log.warning("update %s: database unavailable, Telegram will redeliver: %s", update_id, description)
    WEBHOOK_UPDATES.labels("unavailable").inc()
    return _unavailable()


def _unavailable() -> Response:
    response = _error(503, "database unavailable, retry later")
    response.headers["Retry-After"] = "5"
    return response


def _secret_matches(given: str) -> bool:
    expected = current_settings().webhook_secret
    if not expected:  # local mode without a secret: the webhook stays closed
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def _read_update(body: bytes) -> dict:
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):  # includes invalid UTF-8
        raise BadUpdate("body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise BadUpdate("an update is a JSON object")
    update_id = raw.get("update_id")
    if type(update_id) is not int or not 0 <= update_id <= MAX_UPDATE_ID:
        raise BadUpdate("update_id must be a non-negative integer")
    if len(raw) > 2:
        raise BadUpdate("an update carries at most one kind of content")
    for kind, body in raw.items():
        if kind == "update_id":
            continue
        if not isinstance(body, dict):
            raise BadUpdate("an update's content must be an object")
        issue = shape.problem(kind, body)
        if issue:
            raise BadUpdate(f"malformed update: {issue}")
    return raw


def _rejected(status: int, message: str) -> Response:
    WEBHOOK_UPDATES.labels("rejected").inc()
    return _error(status, message)


def _error(status: int, message: str) -> Response:
    response = jsonify(ok=False, error=message)
    response.status_code = status
    return response
