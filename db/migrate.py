"""Alembic, driven from code: the database is upgraded to head whenever a server or worker
starts (unless HPSEARCH_MIGRATE_ON_START=false, where one `hpsearch db upgrade` does it), under
a PostgreSQL advisory lock (migrations/env.py) so that processes starting together upgrade once.

An empty database skips the migrations: it gets the newest schema from the models and is stamped
at the head revision, in one transaction (Alembic's "Building an Up to Date Database from
Scratch"). tests/db/test_schema_from_models.py holds the models to the schema the migrations
build, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, inspect, text
from sqlalchemy.exc import DBAPIError

from hpsearch.db.models import Base
from hpsearch.db.session import get_engine
from hpsearch.db.settings import get_settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*(.+)$", re.MULTILINE)
# Any constant works; it only has to be the same for every hpsearch process (env.py takes it too).
MIGRATION_LOCK_ID = 7_231_004
# Alembic's version table, as Alembic creates it (the schema test compares the two).
_VERSION = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at our migrations and `url` (default: settings)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would read '%' in a password as a reference.
    config.set_main_option(
        "sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%")
    )
    return config


def upgrade(url: str | None = None) -> None:
    """Bring the database at `url` to the newest schema; a no-op when it is there."""
    if at_head(url) or create_from_models(url):  # Alembic's import and scripts only when needed
        return
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def create_from_models(url: str | None = None) -> bool:
    """Give the database at `url` the newest schema from the models, stamped with the head
    revision, if it has no table at all; False (and nothing done) if it has one."""
    head = _head()
    if head is None:
        return False
    with get_engine(url).begin() as connection:  # SQLite: BEGIN IMMEDIATE, the write lock
        if connection.dialect.name == "postgresql":  # processes starting together: one creates
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        if inspect(connection).get_table_names():
            return False
        Base.metadata.create_all(connection, checkfirst=False)
        _VERSION.create(connection)
        connection.execute(_VERSION.insert().values(version_num=head))
    return True


def upgrade_at_start() -> None:
    """What `hpsearch serve` and `hpsearch worker` do first: `upgrade`, unless the deployment
    runs its migrations as a step of its own (HPSEARCH_MIGRATE_ON_START=false)."""
    if get_settings().migrate_on_start:
        upgrade()


def at_head(url: str | None = None) -> bool:
    """Whether the database at `url` is at the one newest revision of our migrations; False
    when in doubt (no version table, several heads), for Alembic to decide."""
    head = _head()
    if head is None:
        return False
    try:
        with get_engine(url).connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:  # no version table yet: an empty database
        return False
    return [version for (version,) in versions] == [head]


@cache
def _head() -> str | None:
    """The newest revision, read from the migration scripts without Alembic: the one no other
    script names as its `down_revision`; None unless there is exactly one."""
    revisions, parents = set(), set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        for name, value in _REVISION.findall(script.read_text()):
            found = set(re.findall(r"[\"']([^\"']+)[\"']", value))
            (parents if name == "down_revision" else revisions).update(found)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None
