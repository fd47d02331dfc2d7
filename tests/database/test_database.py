"""Server-side limits reach every transaction, pooled (PgBouncer) or direct."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from models.base import db
from stack_harness.bot_env import make_env
from tests.helpers import build_app
from worker_process import lifecycle


@pytest.mark.parametrize("pooled", ["false", "true"])
def test_every_transaction_has_the_statement_and_idle_timeouts(pg_database_url, emulator, pooled):
    app = build_app(make_env(pg_database_url, emulator.url, DB_POOLED=pooled, DB_STATEMENT_TIMEOUT_MS="1500"),
                    background=False)
    try:
        with app.app_context():
            assert db.session.execute(text("SHOW statement_timeout")).scalar() == "1500ms"
            assert db.session.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "10s"
            name = db.session.execute(text("SHOW application_name")).scalar()
            assert name.startswith("bot-worker-")
            db.session.commit()
            with pytest.raises(Exception, match="statement timeout"):
                db.session.execute(text("SELECT pg_sleep(3)"))
            db.session.rollback()
    finally:
        lifecycle.shutdown(app)
