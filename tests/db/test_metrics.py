"""Per-step metrics are stored once per trial and step, whoever writes them again."""

from __future__ import annotations

from hpsearch.db import queries
from hpsearch.db.migrate import upgrade
from hpsearch.db.session import session_scope
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from tests.conftest import run_first_trial, tiny_study


def test_writing_a_trials_steps_again_stores_each_step_once(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        definition = StudyDefinition.model_validate(tiny_study(budget={"trials": 1}))
        team_id = queries.ensure_team(session)
        study_id = coordinator.create_study(session, team_id=team_id, definition=definition).id
    trial = run_first_trial(sqlite_url, study_id)
    with session_scope(sqlite_url) as session:
        stored = [(m.step, m.metrics) for m in queries.metrics_of(session, trial.id)]
        assert [step for step, _ in stored] == [1, 2, 3, 4, 5]
        # A retried batch: the same steps, and one more.
        queries.add_metrics(session, trial.id, [*stored[-2:], (6, {"val_accuracy": 0.5})])
    with session_scope(sqlite_url) as session:
        again = [(m.step, m.metrics) for m in queries.metrics_of(session, trial.id)]
    assert again == [*stored, (6, {"val_accuracy": 0.5})]
