"""GET /health for the uptime monitor (knows the database), GET /livez (process only)."""
from __future__ import annotations

import logging
import os
import time

from flask import Blueprint, current_app, jsonify

from models.base import db
from settings import current_settings

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)

# A checkout that timed out this recently, with every connection checked out,
# means requests are being turned away: the pool is saturated.
SATURATION_WINDOW_SECONDS = 10.0
STARTED = time.monotonic()


@bp.get("/livez")
def livez():
    return jsonify(status="ok", worker_pid=os.getpid())


@bp.get("/health")
def health():
    probe = current_app.extensions["db_probe"].check()
    pool = pool_figures()
    reason = None
    if not probe.ok:
        # The driver's text names hosts and users: it goes to the log, not to whoever asks.
        log.warning("/health: database check failed: %s", probe.error)
        reason = "database unreachable or not answering"
    elif pool["saturated"]:
        reason = "connection pool saturated: checkouts are timing out"
    body = {
        "status": "ok" if reason is None else "unhealthy",
        "reason": reason,
        "database": {"ok": probe.ok, "latency_ms": _round(probe.latency_ms)},
        "pool": pool,
        "worker_pid": os.getpid(),
        "uptime_seconds": round(time.monotonic() - STARTED, 1),
    }
    return jsonify(body), 200 if reason is None else 503


def pool_figures() -> dict:
    pool = db.engine.pool
    size = pool.size() if hasattr(pool, "size") else 0
    checked_out = pool.checkedout() if hasattr(pool, "checkedout") else 0
    overflow = max(0, pool.overflow()) if hasattr(pool, "overflow") else 0
    settings = current_settings()
    capacity = settings.pool_size + settings.max_overflow
    since_timeout = current_app.extensions["pool_timeouts"].seconds_since_last()
    saturated = (
        checked_out >= capacity
        and since_timeout is not None
        and since_timeout < SATURATION_WINDOW_SECONDS
    )
    return {"size": size, "checked_out": checked_out, "overflow": overflow, "capacity": capacity,
            "saturated": saturated}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
