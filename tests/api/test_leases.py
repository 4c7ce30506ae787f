"""The lease logic below the agents' routes, on a SQLite database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from hpsearch.api import leases
from hpsearch.db import queries
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Study, Trial, TrialState, utcnow
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from tests.api.conftest import table_csv
from tests.conftest import tiny_study


def stored_study(url: str, **overrides: object) -> int:
    """A stored study with its first trials queued (dispatched nowhere)."""
    upgrade(url)
    with session_scope(url) as session:
        definition = StudyDefinition.model_validate(tiny_study(**overrides))
        team_id = queries.ensure_team(session)
        study_id = coordinator.create_study(session, team_id=team_id, definition=definition).id
    coordinator.refill(study_id, dispatch=lambda ids: None, url=url)
    return study_id


def silence(session: object, study_id: int, number: int) -> None:
    """Make a running trial's last heartbeat an hour old: past any lease."""
    session.execute(  # type: ignore[attr-defined]
        update(Trial)
        .where(Trial.study_id == study_id, Trial.number == number)
        .values(heartbeat_at=utcnow() - timedelta(hours=1))
    )


def test_leases_look_for_lost_trials_once_per_sweep_interval(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSEARCH_SWEEP_EVERY_S", "3600")
    get_settings.cache_clear()
    study_id = stored_study(sqlite_url, budget={"trials": 3, "parallelism": 2})
    with session_scope(sqlite_url) as session:
        study = session.get_one(Study, study_id)
        assert leases.lease(session, study, "a").trial.number == 0  # type: ignore[union-attr]
        silence(session, study_id, 0)
        # Polled again within the sweep interval: no sweep, so the silent trial still runs.
        assert leases.lease(session, study, "b").trial.number == 1  # type: ignore[union-attr]
        assert queries.trial_by_number(session, study_id, 0).state == TrialState.RUNNING  # type: ignore[union-attr]

    monkeypatch.setenv("HPSEARCH_SWEEP_EVERY_S", "0.000001")
    get_settings.cache_clear()
    with session_scope(sqlite_url) as session:
        leases.lease(session, session.get_one(Study, study_id), "b")
        lost = queries.trial_by_number(session, study_id, 0)
        assert lost is not None and (lost.state, lost.reason) == (TrialState.FAILED, "lost")


def test_an_upload_streams_to_the_agent_its_trial_is_leased_to_on_sqlite(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parts of 1 KiB: the 300-row table is read in several, each in a transaction of its own.
    monkeypatch.setattr(leases, "DATASET_PART", 1024)
    content = table_csv(300)
    dataset = client.post(
        "/api/v1/datasets", files={"file": ("t.csv", content)}, data={"target": "label"}
    )
    assert dataset.status_code == 201, dataset.text
    study = tiny_study(runs_on="agents", budget={"trials": 1, "parallelism": 1})
    study_id = client.post("/api/v1/studies", json=study).json()["id"]
    base = f"/api/v1/studies/{study_id}"
    assert client.post(f"{base}/lease", json={"agent": "laptop:1"}).status_code == 200
    path = f"{base}/trials/0/datasets/{dataset.json()['id']}"
    served = client.get(path, params={"agent": "laptop:1"})
    assert served.status_code == 200, served.text
    assert served.content == content and len(content) > 3 * 1024
    assert served.headers["x-dataset-format"] == "csv"
    other = client.get(path, params={"agent": "laptop:2"})
    assert other.status_code == 409 and other.json()["error"]["field"] == "agent"
    missing = client.get(f"{base}/trials/0/datasets/999", params={"agent": "laptop:1"})
    assert missing.status_code == 404
