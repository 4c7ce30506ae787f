"""Per-step metrics are stored once per trial and step, whoever writes them again."""

from __future__ import annotations

from hpsearch.db import queries
from hpsearch.db.migrate import upgrade
from hpsearch.db.session import session_scope
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from tests.conftest import run_first_trial, tiny_study


def test_writing_a_trials_steps_again_stores_each_step_once(sqlite_url: str) -> None:
    check_writing_a_trials_steps_again(sqlite_url)


def check_writing_a_trials_steps_again(url: str) -> None:
    """Each dialect has its own insert that skips a stored step (PostgreSQL's in
    tests/integration/test_trials_postgres.py)."""
    upgrade(url)
    with session_scope(url) as session:
        definition = StudyDefinition.model_validate(tiny_study(budget={"trials": 1}))
        team_id = queries.ensure_team(session)
        study_id = coordinator.create_study(session, team_id=team_id, definition=definition).id
    trial = run_first_trial(url, study_id)
    with session_scope(url) as session:
        stored = [(m.step, m.metrics) for m in queries.metrics_of(session, trial.id)]
        assert [step for step, _ in stored] == [1, 2, 3, 4, 5]
        # A retried batch: the same steps, and one more.
        queries.add_metrics(session, trial.id, [*stored[-2:], (6, {"val_accuracy": 0.5})])
    with session_scope(url) as session:
        again = [(m.step, m.metrics) for m in queries.metrics_of(session, trial.id)]
    assert again == [*stored, (6, {"val_accuracy": 0.5})]
