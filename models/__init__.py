"""The database models, one concept per module.

Model modules import ``db`` from models.base, so this package imports
nothing eagerly; ``load_all`` registers every model with
the metadata (the app factory calls it, for Alembic's autogenerate too).
"""
import importlib

MODEL_MODULES = ("user", "processed_update", "outbox", "dead_letter", "payment", "membership", "invite", "entitlement",
                 "lease", "star_cursor", "subscription", "outbox_pace",
                 "broadcast")


def load_all() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(f"models.{name}")
