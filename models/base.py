"""Declarative base shared by every model, the column types they use, and ``db``.

``db`` (Flask-SQLAlchemy) lives beside the base it is built on: every model
module imports it from here, and nothing here imports the rest of the server,
so the models sit at the bottom of the import graph.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, DateTime, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase, registry
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic can find them again in later migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# An auto-numbered key: BIGINT on PostgreSQL, but SQLite only auto-numbers
# a column declared exactly INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Always timezone-aware UTC in Python, on PostgreSQL and on SQLite alike.

    SQLite has no time zones; without this, the embedded default would hand
    back naive datetimes that cannot be compared with ``utcnow()``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Flask-SQLAlchemy's ``db.Model`` derives from this."""

    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        # Telegram ids exceed 32 bits (channel ids are -100xxxxxxxxxx).
        type_annotation_map={int: BigInteger, datetime: UTCDateTime},
    )


# Unbound until the factory calls db.init_app(app); one engine (one pool) per process.
db = SQLAlchemy(model_class=Base)
