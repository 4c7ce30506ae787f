from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from hpsearch.db.migrate import alembic_config, upgrade
from hpsearch.db.models import Base
from hpsearch.db.session import get_engine


def test_upgrade_creates_every_table_and_matches_the_models(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    upgrade(sqlite_url)  # a second start finds the schema current
    tables = set(inspect(get_engine(sqlite_url)).get_table_names())
    assert set(Base.metadata.tables) <= tables
    # Fails when a model changed without a migration.
    command.check(alembic_config(sqlite_url))


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    with get_engine(sqlite_url).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
