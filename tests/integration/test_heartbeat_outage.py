"""A running trial's heartbeats during a real PostgreSQL outage: one warning as it begins and one
line as it ends, however many beats were missed, and never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from hpsearch.db import queries
from hpsearch.db.migrate import upgrade
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from hpsearch.worker import runner
from tests.conftest import tiny_study
from tests.integration.test_agents import wait_until
from tests.servers import PostgresServer


@pytest.fixture
def quick_beats(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HPSEARCH_HEARTBEAT_S", "0.05")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def running_trial(url: str) -> tuple[int, int]:
    """(trial id, study id) of a trial claimed by this process, as a worker claims one."""
    upgrade(url)
    definition = StudyDefinition.model_validate(tiny_study(budget={"trials": 1}))
    with session_scope(url) as session:
        study = coordinator.create_study(
            session, team_id=queries.ensure_team(session), definition=definition
        )
        (trial_id,) = coordinator.queue_next(session, study.id)
        assert queries.claim_trial(session, trial_id, runner.worker_name()) is not None
        return trial_id, study.id


def test_heartbeats_log_an_outage_once_as_it_begins_and_once_as_it_ends(
    fresh_database_url: str,
    postgres_server: PostgresServer,
    quick_beats: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    trial_id, study_id = running_trial(fresh_database_url)
    beats = runner._Heartbeats()
    with (
        caplog.at_level(logging.INFO, logger=runner.log.name),
        beats.beating(trial_id, study_id, fresh_database_url, lambda *_: None),
    ):
        with postgres_server.down():
            wait_until(lambda: beats.database.failures >= 5, "no beat failed")
        wait_until(lambda: beats.database.since is None, "no beat got through again")
    records = [r for r in caplog.records if r.name == runner.log.name]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING], records
    assert records[0].getMessage().startswith("database (heartbeats) unreachable: ")
    assert records[1].getMessage().startswith("database (heartbeats) reachable again after ")
    assert all(r.exc_info is None for r in records)
