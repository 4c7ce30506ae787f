"""The embedded dispatcher's signal to whoever shows a study's progress (`hpsearch run`)."""

from __future__ import annotations

from hpsearch.db import accounts
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Study, StudyStatus
from hpsearch.db.session import session_scope
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from hpsearch.worker.dispatch import LocalPool
from tests.conftest import tiny_study


def test_a_trial_ended_is_signalled_once_the_database_has_it(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        team = accounts.create_team(session, "alpha")
        definition = StudyDefinition.model_validate(
            tiny_study(budget={"trials": 1, "parallelism": 1})
        )
        study_id = coordinator.create_study(session, team_id=team.id, definition=definition).id
    pool = LocalPool(1, url=sqlite_url)
    try:
        assert not pool.trial_ended.is_set()
        coordinator.refill(study_id, dispatch=pool.dispatch, url=sqlite_url)
        assert pool.trial_ended.wait(timeout=120)
        # What `hpsearch run` reads when woken: its one trial's end has ended the study.
        with session_scope(sqlite_url) as session:
            assert session.get_one(Study, study_id).status == StudyStatus.COMPLETE
    finally:
        pool.shutdown()
