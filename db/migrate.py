"""Alembic, driven from code: the database is upgraded to head whenever a server or worker
starts (unless HPSEARCH_MIGRATE_ON_START=false, where one `hpsearch db upgrade` does it), under
a PostgreSQL advisory lock (migrations/env.py) so that processes starting together upgrade once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from hpsearch.db.settings import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at our migrations and `url` (default: settings)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would read '%' in a password as a reference.
    config.set_main_option(
        "sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%")
    )
    return config


def upgrade(url: str | None = None) -> None:
    """Bring the database at `url` to the newest schema; a no-op when it is there."""
    command.upgrade(alembic_config(url), "head")


def upgrade_at_start() -> None:
    """What `hpsearch serve` and `hpsearch worker` do first: `upgrade`, unless the deployment
    runs its migrations as a step of its own (HPSEARCH_MIGRATE_ON_START=false)."""
    if get_settings().migrate_on_start:
        upgrade()
