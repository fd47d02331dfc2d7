"""Small helpers shared by the tests: building updates and reading the database."""
from __future__ import annotations

import time
from bisect import bisect_left

from sqlalchemy import func, select, text

from bot_outbox import jobs
from botapi_emulator.updates import text_message_update, user_json
from database import migrations
from main import create_app
from models.base import db
from settings import load_settings
from settings.telegram import SECRET_HEADER
from stack_harness.bot_env import WEBHOOK_SECRET
from worker_process import lifecycle


def command(update_id: int, user_id: int, text_: str = "/start", first_name: str = "Ada") -> dict:
    return text_message_update(update_id, update_id, int(time.time()), user_json(user_id, first_name), text_)


def post_update(client, update, secret: str = WEBHOOK_SECRET):
    return client.post("/webhook", json=update, headers={SECRET_HEADER: secret})


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def sessions_of(app, state: str) -> int:
    """Server backends of this database in ``state`` (e.g. 'idle in transaction')."""
    with app.app_context():
        return db.session.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND state = :state AND pid <> pg_backend_pid()"), {"state": state})


def wait_until(condition, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    """Poll ``condition`` until it is truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def checked_out(app) -> int:
    """Connections of the app's pool currently lent out."""
    with app.app_context():
        return db.engine.pool.checkedout()


def build_app(env: dict[str, str], background: bool = True, **overrides):
    """An app with its schema at head and, unless told otherwise, its background threads running."""
    app = create_app(load_settings(env, **overrides))
    migrations.upgrade_to_head(app, wait_seconds=0)
    if background:
        lifecycle.start_background(app)
    return app


def enqueue(app, *calls: tuple[str, dict, int | None]) -> list[int]:
    """Commit calls the way a handler's transaction does, then wake the senders."""
    with app.app_context():
        queued = [jobs.enqueue_call(db.session, method, params, chat_id=chat) for method, params, chat in calls]
        db.session.commit()
        ids = [job.id for job in queued]
    app.extensions["outbox_sender"].notify(len(ids))
    return ids


def busiest_second(times: list[float]) -> int:
    """The most events in any one-second window [t, t + 1), t anywhere (it suffices to start at an event)."""
    times = sorted(times)
    return max((bisect_left(times, start + 1.0) - index for index, start in enumerate(times)), default=0)
