"""The grants migration: it makes exactly the tables of the models, and goes down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from store.models import Base

TABLES = {"license_grants", "license_grant_accesses"}


def _ours(diff: tuple) -> bool:
    """Whether an autogenerate difference is about one of our tables (by name or by object)."""
    for part in diff:
        table = getattr(part, "table", part)
        if (part if isinstance(part, str) else getattr(table, "name", None)) in TABLES:
            return True
    return False


def test_migration_matches_the_models(db):
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    flat = [change for d in differences for change in (d if isinstance(d, list) else [d])]
    assert [d for d in flat if _ours(d)] == []
    assert TABLES <= set(inspect(db.engine).get_table_names())


def test_migration_0007_down_and_up(db):
    config = db._alembic_config()
    command.downgrade(config, "0006_login")
    assert not TABLES & set(inspect(db.engine).get_table_names())
    command.upgrade(config, "0007_grants")
    assert TABLES <= set(inspect(db.engine).get_table_names())
