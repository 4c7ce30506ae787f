"""The worker's own check: a trial never reads another team's dataset, whatever its config says."""

from __future__ import annotations

from hpsearch.db import accounts, datasets
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import TrialState
from hpsearch.db.session import session_scope
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from tests.api.conftest import table_csv
from tests.conftest import run_first_trial, tiny_study


def test_a_trial_naming_another_teams_dataset_fails_without_reading_it(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        alpha = accounts.create_team(session, "alpha")
        beta = accounts.create_team(session, "beta")
        summary = {"columns": {"x1": {}, "x2": {}, "colour": {}, "label": {}}}
        theirs, _ = datasets.store(
            session,
            team_id=alpha.id,
            name="secret.csv",
            format="csv",
            content=table_csv(60),
            summary=summary,
            created_by=None,
        )
        session.flush()
        # Stored as it is, past every submission check: the worker must hold the wall itself.
        definition = StudyDefinition.model_validate(
            tiny_study(
                dataset={"name": str(theirs.id), "target": "wrong"},
                model={"type": "softmax"},
                budget={"trials": 1},
            )
        )
        study = coordinator.create_study(session, team_id=beta.id, definition=definition)
        study_id = study.id
    trial = run_first_trial(sqlite_url, study_id)
    assert trial.state == TrialState.FAILED
    assert f"no dataset {theirs.id} in this study's team" in (trial.reason or "")
    # With a wrong target the engine would have listed the columns: it never got the rows.
    assert not any(column in (trial.reason or "") for column in ("x1", "x2", "colour"))
