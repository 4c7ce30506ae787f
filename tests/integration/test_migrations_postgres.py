"""Migrations on PostgreSQL: 0006 both ways."""

from __future__ import annotations

from tests.db.test_migrations import check_the_dataset_versions_migration


def test_the_dataset_versions_migration_runs_both_ways(fresh_database_url: str) -> None:
    check_the_dataset_versions_migration(fresh_database_url)
