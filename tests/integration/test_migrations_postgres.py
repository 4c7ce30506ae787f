"""Migrations on PostgreSQL: 0007 (dataset versions) both ways, processes that start together
on an empty database upgrading it once (the advisory locks in db/migrate.py and
db/migrations/env.py), and the models building the schema the migrations build."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from alembic import command
from sqlalchemy import inspect, text

from hpsearch.db.migrate import alembic_config
from hpsearch.db.models import Base
from hpsearch.db.session import get_engine
from tests.db.schema import differences, schema_of
from tests.db.test_migrations import check_the_dataset_versions_migration
from tests.db.test_schema_from_models import check_the_models_build_the_migrated_schema
from tests.servers import HPSEARCH

STARTS = 4


def test_the_dataset_versions_migration_runs_both_ways(fresh_database_url: str) -> None:
    check_the_dataset_versions_migration(fresh_database_url)


def test_upgrades_started_together_on_an_empty_database_all_succeed(
    fresh_database_url: str,
) -> None:
    # Separate processes, as `docker compose up --scale worker=4` would start them: each one
    # without the lock would try to create the same tables.
    starts = [
        subprocess.Popen(
            [HPSEARCH, "db", "upgrade", "--db", fresh_database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(STARTS)
    ]
    outputs = [start.communicate(timeout=300)[0] for start in starts]
    assert [start.returncode for start in starts] == [0] * STARTS, outputs
    engine = get_engine(fresh_database_url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert len(versions) == 1
    command.check(alembic_config(fresh_database_url))


def test_the_models_build_the_schema_the_migrations_build(
    database_factory: Callable[[], str],
) -> None:
    models, migrated = database_factory(), database_factory()
    check_the_models_build_the_migrated_schema(models, migrated)
    # Column storage is compared too: uploads' EXTERNAL storage (migration 0008) is the models'.
    with get_engine(models).begin() as connection:
        connection.execute(text("ALTER TABLE datasets ALTER COLUMN content SET STORAGE EXTENDED"))
    assert differences(schema_of(models), schema_of(migrated)) == [
        "datasets storage content: x != e"
    ]
