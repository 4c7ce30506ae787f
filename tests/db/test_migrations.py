from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text

from hpsearch.db import accounts, queries
from hpsearch.db.migrate import alembic_config, upgrade, upgrade_at_start
from hpsearch.db.models import Base, TrialState
from hpsearch.db.session import get_engine, session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from tests.conftest import tiny_study


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


def check_the_traceback_migration(url: str) -> None:
    """Migration 0005 both ways on the database at `url`, with a failed trial that keeps its
    reason throughout and its traceback while the column exists."""
    upgrade(url)
    command.check(alembic_config(url))
    with session_scope(url) as session:
        team = accounts.create_team(session, "alpha")
        definition = StudyDefinition.model_validate(tiny_study(budget={"trials": 1}))
        study_id = coordinator.create_study(session, team_id=team.id, definition=definition).id
    (trial_id,) = coordinator.refill(study_id, dispatch=lambda ids: None, url=url)
    with session_scope(url) as session:
        queries.claim_trial(session, trial_id, "test")
        ended = queries.finish_trial(
            session, trial_id, TrialState.FAILED, reason="error: E: m", traceback="line\nE: m"
        )
        assert ended
    read = text("SELECT reason, traceback FROM trials WHERE id = :id")
    with get_engine(url).connect() as connection:
        assert connection.execute(read, {"id": trial_id}).one() == ("error: E: m", "line\nE: m")
    command.downgrade(alembic_config(url), "0004")
    columns = {c["name"] for c in inspect(get_engine(url)).get_columns("trials")}
    assert "traceback" not in columns and "reason" in columns
    upgrade(url)
    command.check(alembic_config(url))
    with get_engine(url).connect() as connection:
        assert connection.execute(read, {"id": trial_id}).one() == ("error: E: m", None)


def test_the_traceback_migration_runs_both_ways_and_keeps_the_trials(sqlite_url: str) -> None:
    check_the_traceback_migration(sqlite_url)


def check_the_dataset_versions_migration(url: str) -> None:
    """Migration 0007 both ways on the database at `url`: uploads made before under one name
    become its versions in the order they were made; studies get no pins."""
    command.upgrade(alembic_config(url), "0006")
    with session_scope(url) as session:
        team_id = accounts.create_team(session, "alpha").id
    insert = text(
        "INSERT INTO datasets (team_id, name, format, content_hash, size_bytes, summary,"
        " content, created_at) VALUES (:team, :name, 'csv', :hash, 1, '{}', :content, :at)"
    )
    with get_engine(url).begin() as connection:
        for name, digest in [("t.csv", "a"), ("other", "b"), ("t.csv", "c")]:
            connection.execute(
                insert,
                {
                    "team": team_id,
                    "name": name,
                    "hash": digest * 64,
                    "content": b"x",
                    "at": "2026-01-01 00:00:00",
                },
            )
    upgrade(url)
    command.check(alembic_config(url))
    read = text("SELECT name, version FROM datasets ORDER BY id")
    with get_engine(url).connect() as connection:
        assert connection.execute(read).all() == [("t.csv", 1), ("other", 1), ("t.csv", 2)]
    with session_scope(url) as session:
        definition = StudyDefinition.model_validate(tiny_study())
        study = coordinator.create_study(session, team_id=team_id, definition=definition)
        session.flush()
        assert study.datasets == {}
    command.downgrade(alembic_config(url), "0006")
    columns = {c["name"] for c in inspect(get_engine(url)).get_columns("datasets")}
    assert "version" not in columns
    upgrade(url)
    with get_engine(url).connect() as connection:
        assert connection.execute(read).all() == [("t.csv", 1), ("other", 1), ("t.csv", 2)]


def test_the_dataset_versions_migration_runs_both_ways(sqlite_url: str) -> None:
    check_the_dataset_versions_migration(sqlite_url)


def test_a_deployment_can_leave_the_upgrade_to_its_own_step(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSEARCH_MIGRATE_ON_START", "false")
    get_settings.cache_clear()
    upgrade_at_start()
    assert inspect(get_engine(sqlite_url)).get_table_names() == []
    monkeypatch.delenv("HPSEARCH_MIGRATE_ON_START")
    get_settings.cache_clear()
    upgrade_at_start()
    assert set(Base.metadata.tables) <= set(inspect(get_engine(sqlite_url)).get_table_names())
