"""Alembic environment: migrations on `hpsearch.db.session`'s engine, serialised across
processes."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import text

from hpsearch.db.migrate import MIGRATION_LOCK_ID
from hpsearch.db.models import Base, UTCDateTime
from hpsearch.db.session import get_engine


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # Migrations stay plain SQLAlchemy: our UTC wrapper is a Python-side conversion only.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    with get_engine(url).connect() as connection:
        is_postgres = connection.dialect.name == "postgresql"
        if is_postgres:
            # Workers and the API start together; only one of them may create the tables.
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                compare_type=True,
                render_as_batch=connection.dialect.name == "sqlite",
                render_item=_render_item,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if is_postgres:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
                connection.commit()


run_migrations_online()
