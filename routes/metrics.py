"""GET /metrics: Prometheus text format, for whoever scrapes the server.

With ``METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer
<token>`` (compared in constant time); anything else gets 401 and no figures.
"""
from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from database.errors import describe_error
from models.base import db
from observability import database_figures
from observability.metrics import exposition
from settings import current_settings

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)


@bp.get("/metrics")
def metrics():
    settings = current_settings()
    if settings.metrics_token and not _bearer_matches(settings.metrics_token):
        return Response("unauthorized\n", status=401, content_type="text/plain; charset=utf-8",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body = exposition(settings.metrics_dir, database_figures.metric_families(_read_figures()))
    # content_type, not mimetype: Flask would append a second "; charset=utf-8".
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _bearer_matches(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode())


def _read_figures() -> database_figures.DatabaseFigures | None:
    """None when the database is known to be down or the read fails: the scrape still answers."""
    if current_app.extensions["db_probe"].known_down():
        return None
    try:
        return database_figures.read(db.session)
    except Exception as error:  # a scrape must not fail for a slow or missing database
        log.warning("/metrics: database figures unavailable: %s", describe_error(error))
        return None
    finally:
        db.session.rollback()
