"""Trials on a real PostgreSQL: migration 0005 (a failed trial's traceback) both ways."""

from __future__ import annotations

from tests.db.test_migrations import check_the_traceback_migration


def test_the_traceback_migration_runs_both_ways_and_keeps_the_trials(
    fresh_database_url: str,
) -> None:
    check_the_traceback_migration(fresh_database_url)
