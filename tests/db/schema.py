"""A database's schema as plain data, to compare the schema the models build with the one the
migrations build: every table (Alembic's version table too), its columns with their types,
nullability and server defaults, its primary key, foreign keys, unique constraints, indexes
and check constraints, each with its name; on PostgreSQL, each column's storage as well."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import Engine, create_engine, inspect, text

from hpsearch.db.migrate import alembic_config


def _table(engine: Engine, name: str) -> dict[str, Any]:
    inspector = inspect(engine)
    dialect = engine.dialect
    columns = {
        column["name"]: (
            str(column["type"].compile(dialect=dialect)),
            column["nullable"],
            column.get("default"),
        )
        for column in inspector.get_columns(name)
    }
    pk = inspector.get_pk_constraint(name)
    return {
        "columns": columns,
        "primary key": (pk["name"], tuple(pk["constrained_columns"])),
        "foreign keys": sorted(
            (
                fk["name"] or "",
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                tuple(fk["referred_columns"]),
                tuple(sorted(fk["options"].items())),
            )
            for fk in inspector.get_foreign_keys(name)
        ),
        "unique": sorted(
            (uq["name"] or "", tuple(uq["column_names"]))
            for uq in inspector.get_unique_constraints(name)
        ),
        "indexes": sorted(
            (ix["name"] or "", tuple(ix["column_names"]), bool(ix["unique"]))
            for ix in inspector.get_indexes(name)
        ),
        "checks": sorted(
            (ck["name"] or "", ck["sqltext"]) for ck in inspector.get_check_constraints(name)
        ),
    }


# PostgreSQL's per-column storage (migration 0008 sets EXTERNAL for uploads), which no
# reflection method reports.
_STORAGE = text(
    "SELECT c.relname, a.attname, a.attstorage FROM pg_attribute a"
    " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0"
    " AND NOT a.attisdropped"
)


def schema_of(url: str) -> dict[str, Any]:
    """The schema of the database at `url`, as plain data that compares with ==."""
    engine = create_engine(url)
    try:
        schema: dict[str, Any] = {
            name: _table(engine, name) for name in sorted(inspect(engine).get_table_names())
        }
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                for table, column, storage in connection.execute(_STORAGE):
                    schema[table].setdefault("storage", {})[column] = storage
        with engine.connect() as connection:
            schema["alembic_version rows"] = sorted(
                connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
        return schema
    finally:
        engine.dispose()


def migrate_all_the_way(url: str) -> None:
    """Build the schema at `url` by running every migration, as an existing database of the
    first revision would be upgraded."""
    command.upgrade(alembic_config(url), "head")


def differences(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """Where two schemas differ, one line each, for a readable assertion."""
    lines = []
    for table in sorted(set(left) | set(right)):
        if table not in left or table not in right:
            lines.append(f"{table}: only in {'right' if table not in left else 'left'}")
            continue
        a, b = left[table], right[table]
        if not isinstance(a, dict):
            if a != b:
                lines.append(f"{table}: {a} != {b}")
            continue
        for part in sorted(set(a) | set(b)):
            x, y = a.get(part), b.get(part)
            if isinstance(x, dict) and isinstance(y, dict):  # columns, storage: by column
                lines += [
                    f"{table} {part} {key}: {x.get(key)} != {y.get(key)}"
                    for key in sorted(set(x) | set(y))
                    if x.get(key) != y.get(key)
                ]
            elif x != y:
                lines.append(f"{table} {part}: {x} != {y}")
    return lines
