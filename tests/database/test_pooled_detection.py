"""Whether DATABASE_URL goes through a transaction-mode pooler is known before the first connection."""
from __future__ import annotations

import pytest

from settings import ConfigError, load_settings

GOOD = {
    "BOT_TOKEN": "123456:ABC-def_ghi",
    "WEBHOOK_SECRET": "s3cret_token-OK",
    "CHANNEL_ID": "-1001234567890",
    "ADMIN_IDS": "1",
    "PLANS": '[{"id": "month", "title": "Month", "stars": 100, "days": 30}]',
}
DIRECT = "postgres://u:p@postgres.railway.internal:5432/railway"
POOLED = "postgres://u:p@pgbouncer.railway.internal:6432/railway"


def settings_with(**env: str):
    return load_settings({**GOOD, **env})


@pytest.mark.parametrize("url, sign", [
    ("postgres://u:p@db.internal:6432/app", "DATABASE_URL's port 6432"),
    ("postgres://u:p@pgbouncer.railway.internal:5432/app", "DATABASE_URL's host pgbouncer.railway.internal"),
    ("postgres://u:p@ep-cool-1-pooler.eu.aws.neon.tech/app", "DATABASE_URL's host ep-cool-1-pooler.eu.aws.neon.tech"),
])
def test_a_url_that_looks_like_a_pooler_is_pooled(url, sign):
    settings = settings_with(DATABASE_URL=url)
    assert settings.db_pooled and settings.db_pooled_by == sign
    assert settings.migrates_through_pooler


def test_a_plain_url_is_direct():
    settings = settings_with(DATABASE_URL=DIRECT)
    assert not settings.db_pooled
    assert settings.describe_database() == "database: direct to PostgreSQL: timeouts as startup options"
    assert settings.start_warnings() == []


def test_the_unpooled_url_means_pooled_and_migrations_go_direct():
    settings = settings_with(DATABASE_URL="postgres://u:p@10.0.0.5:5432/app", DATABASE_UNPOOLED_URL=DIRECT)
    assert settings.db_pooled and settings.db_pooled_by == "DATABASE_UNPOOLED_URL is set"
    assert settings.describe_database() == (
        "database: through a transaction-mode pooler (DATABASE_UNPOOLED_URL is set): "
        "timeouts set per transaction, migrations on DATABASE_UNPOOLED_URL")
    assert settings.start_warnings() == []


@pytest.mark.parametrize("value, pooled", [("false", False), ("true", True)])
def test_db_pooled_wins_over_everything(value, pooled):
    settings = settings_with(DATABASE_URL=POOLED, DATABASE_UNPOOLED_URL=DIRECT, DB_POOLED=value)
    assert settings.db_pooled is pooled and settings.db_pooled_by == "DB_POOLED"
    assert settings_with(DATABASE_URL=DIRECT, DB_POOLED=value).db_pooled is pooled
    if not pooled:
        assert settings.describe_database() == \
            "database: direct to PostgreSQL (DB_POOLED=false): timeouts as startup options"


def test_pooled_without_an_unpooled_url_is_a_loud_warning():
    settings = settings_with(DATABASE_URL=POOLED)
    assert "MIGRATIONS THROUGH THE POOLER (no DATABASE_UNPOOLED_URL)" in settings.describe_database()
    [warning] = settings.start_warnings()
    assert "DATABASE_UNPOOLED_URL is not set" in warning and "advisory lock" in warning


def test_a_bad_db_pooled_is_one_line():
    with pytest.raises(ConfigError, match="DB_POOLED='maybe' must be true or false"):
        settings_with(DATABASE_URL=DIRECT, DB_POOLED="maybe")


def test_the_local_database_is_never_pooled():
    settings = load_settings({})
    assert not settings.db_pooled and settings.describe_database() == "database: embedded SQLite (local mode)"
