"""GET /metrics: Prometheus text format, for whoever scrapes the server."""
from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from observability.metrics import exposition
from settings import current_settings

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    body = exposition(current_settings().metrics_dir)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
