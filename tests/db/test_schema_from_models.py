"""An empty database gets its schema from the models (`create_from_models`), not from running
every migration: the two must build the same schema, to the last index, default and name. The
PostgreSQL side is in tests/integration/test_migrations_postgres.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from alembic.operations import BatchOperations, Operations
from sqlalchemy import Column, String, Text, create_engine, inspect

from hpsearch.db.migrate import at_head, create_from_models
from tests.conftest import ROOT
from tests.db.schema import differences, migrate_all_the_way, schema_of


def check_the_models_build_the_migrated_schema(models_url: str, migrated_url: str) -> None:
    """Build one empty database from the models and another through every migration; they
    must not differ."""
    assert create_from_models(models_url)
    assert at_head(models_url)
    migrate_all_the_way(migrated_url)
    assert differences(schema_of(models_url), schema_of(migrated_url)) == []


def test_the_models_build_the_schema_the_migrations_build_on_sqlite(tmp_path: Path) -> None:
    check_the_models_build_the_migrated_schema(
        f"sqlite:///{tmp_path / 'models.db'}", f"sqlite:///{tmp_path / 'migrated.db'}"
    )


def alter(url: str, table: str, change: Callable[[BatchOperations], object]) -> None:
    """Apply `change` to `table` at `url` as a migration would (batch mode: SQLite's copy)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        with Operations(MigrationContext.configure(connection)).batch_alter_table(table) as op:
            change(op)
    engine.dispose()


# What a new migration might add without the models following: each must show as a difference.
CHANGES: dict[str, tuple[str, Callable[[BatchOperations], object]]] = {
    "column": ("trials", lambda op: op.add_column(Column("note", Text))),
    "type": ("studies", lambda op: op.alter_column("name", type_=String(300))),
    "nullability": ("trials", lambda op: op.alter_column("worker", nullable=False)),
    "server default": ("presets", lambda op: op.alter_column("visibility", server_default="t")),
    "index": ("trials", lambda op: op.create_index("ix_trials_worker", ["worker"])),
    "unique": ("teams", lambda op: op.create_unique_constraint("uq_teams_created", ["created_at"])),
    "foreign key": (
        "trials",
        lambda op: op.create_foreign_key("fk_trials_worker", "users", ["worker"], ["name"]),
    ),
    "check": ("trials", lambda op: op.create_check_constraint("ck_attempt", "attempt > 0")),
}


@pytest.mark.parametrize("kind", CHANGES)
def test_a_migration_the_models_lack_shows_as_a_difference(tmp_path: Path, kind: str) -> None:
    models, migrated = f"sqlite:///{tmp_path / 'models.db'}", f"sqlite:///{tmp_path / 'm.db'}"
    create_from_models(models)
    migrate_all_the_way(migrated)
    table, change = CHANGES[kind]
    alter(migrated, table, change)
    found = differences(schema_of(models), schema_of(migrated))
    # Only the change shows: batch mode's copy of the table changes nothing else.
    assert found and all(line.startswith(f"{table} ") for line in found), found


def test_an_empty_database_is_created_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    check = (
        "import sys; from hpsearch.db.migrate import upgrade; upgrade(sys.argv[1]);"
        " print(sorted(m for m in ('alembic', 'alembic.command') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, url], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert at_head(url)


def test_a_database_with_tables_is_left_to_the_migrations(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    assert not create_from_models(str(engine.url))
    assert inspect(engine).get_table_names() == ["notes"]
    engine.dispose()
