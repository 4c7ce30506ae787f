from __future__ import annotations

from collections.abc import Sequence

from db import queries
from db.migrate import upgrade
from db.models import Study, StudyStatus, TrialState
from db.session import session_scope
from search import coordinator
from search.definition import StudyDefinition
from tests.conftest import tiny_study


class Recorder:
    def __init__(self) -> None:
        self.sent: list[int] = []

    def __call__(self, trial_ids: Sequence[int]) -> None:
        self.sent += trial_ids


def new_study(url: str, **overrides: object) -> int:
    upgrade(url)
    definition = StudyDefinition.model_validate(tiny_study(**overrides))
    with session_scope(url) as session:
        team_id = queries.ensure_team(session)
        return coordinator.create_study(session, team_id=team_id, definition=definition).id


def finish(url: str, trial_ids: Sequence[int]) -> None:
    with session_scope(url) as session:
        for trial_id in trial_ids:
            assert queries.claim_trial(session, trial_id, "test")
            queries.finish_trial(session, trial_id, TrialState.COMPLETE, value=0.5)


def finish_queued(url: str, study_id: int) -> None:
    with session_scope(url) as session:
        queued = [t.id for t in queries.trials_of(session, study_id) if t.state == "queued"]
    finish(url, queued)


def status(url: str, study_id: int) -> StudyStatus:
    with session_scope(url) as session:
        return session.get_one(Study, study_id).status


def test_refill_keeps_parallelism_in_flight_and_stops_at_the_budget(sqlite_url: str) -> None:
    study_id = new_study(sqlite_url, budget={"trials": 5, "parallelism": 2})
    dispatch = Recorder()
    first = coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url)
    assert len(first) == 2
    assert coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url) == []
    finish(sqlite_url, first[:1])
    assert len(coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url)) == 1
    while status(sqlite_url, study_id) == StudyStatus.RUNNING:
        finish_queued(sqlite_url, study_id)
        coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url)
    assert len(dispatch.sent) == 5 == len(set(dispatch.sent))
    with session_scope(sqlite_url) as session:
        assert queries.study_progress(session, study_id).by_state == {"complete": 5}


def test_an_exhausted_grid_ends_the_study_before_the_budget(sqlite_url: str) -> None:
    space = {"model.activation": {"type": "categorical", "choices": ["relu", "tanh", "sigmoid"]}}
    study_id = new_study(
        sqlite_url,
        model={"type": "mlp", "hidden": [4]},
        space=space,
        strategy={"type": "grid"},
        budget={"trials": 10, "parallelism": 2},
    )
    dispatch = Recorder()
    coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url)
    while status(sqlite_url, study_id) == StudyStatus.RUNNING:
        finish_queued(sqlite_url, study_id)
        coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url)
    with session_scope(sqlite_url) as session:
        trials = queries.trials_of(session, study_id)
    assert sorted(t.params["model.activation"] for t in trials) == ["relu", "sigmoid", "tanh"]
