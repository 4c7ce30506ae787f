"""Workers load a stored upload through the same checks as the API: the limits hold there too
(a dataset stored under a larger limit, or written to the database by other means)."""

from __future__ import annotations

import pytest

from hpsearch.db import datasets, queries
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Trial, TrialState
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from tests.api.conftest import table_csv
from tests.conftest import run_first_trial, tiny_study


def _trial_on_upload(url: str) -> Trial:
    """A one-trial study on a stored 30-row, 4-column CSV, run here as a worker would."""
    with session_scope(url) as session:
        team_id = queries.ensure_team(session)
        dataset, _ = datasets.store(
            session,
            team_id=team_id,
            name="t.csv",
            format="csv",
            content=table_csv(30),
            summary={},
            created_by=None,
        )
        session.flush()
        document = tiny_study(
            dataset={"name": str(dataset.id), "target": "label"}, budget={"trials": 1}
        )
        definition = StudyDefinition.model_validate(document)
        study_id = coordinator.create_study(session, team_id=team_id, definition=definition).id
    return run_first_trial(url, study_id)


@pytest.mark.parametrize(("limit", "refused"), [(119, True), (120, False)])
def test_a_worker_refuses_a_stored_dataset_over_the_cell_limit(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, limit: int, refused: bool
) -> None:
    upgrade(sqlite_url)
    monkeypatch.setenv("HPSEARCH_MAX_DATASET_CELLS", str(limit))
    get_settings.cache_clear()
    trial = _trial_on_upload(sqlite_url)
    if refused:
        assert trial.state == TrialState.FAILED
        assert "30 rows × 4 columns, over the limit of 119 cells" in (trial.reason or "")
    else:
        assert trial.state == TrialState.COMPLETE, trial.reason
