"""Creating studies idempotently, polling them cheaply, cancelling, resuming, deleting."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hpsearch.db.models import Study, Trial, TrialMetric
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from tests.api.conftest import wait_done
from tests.conftest import tiny_study


def slow_study(**overrides: object) -> dict:
    """Trials that take a few seconds each: time to cancel them while they run."""
    return tiny_study(
        dataset={"name": "digits"},
        model={"type": "mlp", "hidden": [64]},
        training={"optimizer": "sgd", "learning_rate": 0.01, "epochs": 200, "batch_size": 1},
        **overrides,
    )


def count_studies(url: str) -> int:
    with session_scope(url) as session:
        return session.scalar(select(func.count(Study.id))) or 0


def test_the_same_idempotency_key_makes_one_study(client: TestClient, sqlite_url: str) -> None:
    headers = {"Idempotency-Key": "nightly-2026-11-24"}
    first = client.post("/api/v1/studies", json=tiny_study(), headers=headers)
    again = client.post("/api/v1/studies", json=tiny_study(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/api/v1/studies", json=tiny_study(), headers={"Idempotency-Key": "x"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    changed = client.post("/api/v1/studies", json=tiny_study(name="other"), headers=headers)
    assert changed.status_code == 409
    assert changed.json()["error"]["field"] == "Idempotency-Key"
    assert count_studies(sqlite_url) == 2


def test_concurrent_retries_with_one_key_make_one_study(
    client: TestClient, sqlite_url: str
) -> None:
    headers = {"Idempotency-Key": "burst"}
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(
                lambda _: client.post("/api/v1/studies", json=tiny_study(), headers=headers),
                range(6),
            )
        )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert count_studies(sqlite_url) == 1


def test_an_unchanged_study_answers_304_and_a_changed_one_200(client: TestClient) -> None:
    study_id = client.post("/api/v1/studies", json=tiny_study()).json()["id"]
    done = wait_done(client, study_id)
    first = client.get(f"/api/v1/studies/{study_id}")
    etag = first.headers["ETag"]
    assert first.json() == done
    cached = client.get(f"/api/v1/studies/{study_id}", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["ETag"] == etag
    trials = client.get(f"/api/v1/studies/{study_id}/trials")
    trials_etag = trials.headers["ETag"]
    again = client.get(f"/api/v1/studies/{study_id}/trials", headers={"If-None-Match": trials_etag})
    assert again.status_code == 304
    client.delete(f"/api/v1/studies/{study_id}")
    gone = client.get(f"/api/v1/studies/{study_id}", headers={"If-None-Match": etag})
    assert gone.status_code == 404


def test_the_etag_changes_while_a_study_runs(client: TestClient) -> None:
    study_id = client.post(
        "/api/v1/studies", json=tiny_study(budget={"trials": 6, "parallelism": 1})
    ).json()["id"]
    seen = set()
    while True:
        answer = client.get(f"/api/v1/studies/{study_id}")
        seen.add((answer.headers["ETag"], answer.json()["trials_finished"]))
        if answer.json()["status"] != "running":
            break
        time.sleep(0.05)
    etags = {e for e, _ in seen}
    assert len(etags) == len(seen) >= 3  # one ETag per distinct answer, several as it ran


def test_the_eta_weighs_the_trials_left_by_the_epochs_they_train(
    client: TestClient, sqlite_url: str
) -> None:
    """coarse_to_fine's first round trains a quarter of the epochs here: its four trials done in
    4 s are one full trial's worth, so the four full trials left take 16 s, not 4 s."""
    definition = StudyDefinition.model_validate(
        tiny_study(
            training={"optimizer": "adam", "learning_rate": 0.05, "epochs": 8, "batch_size": 32},
            strategy={
                "type": "coarse_to_fine",
                "rounds": 2,
                "samples_per_round": 4,
                "epochs_per_round": [0.25, 1],
            },
            budget={"trials": 8, "parallelism": 4},
        )
    )
    with session_scope(sqlite_url) as session:
        study = coordinator.create_study(session, team_id=1, definition=definition)
        queued = coordinator.queue_next(session, study.id)
        assert len(queued) == 4  # round 1 waits for round 0's results
        for trial_id in queued:
            trial = session.get_one(Trial, trial_id)
            assert trial.params["training.epochs"] == 2
            trial.state = "complete"  # type: ignore[assignment]
            trial.finished_at = study.created_at + timedelta(seconds=4)
        study_id = study.id
    answer = client.get(f"/api/v1/studies/{study_id}").json()
    assert answer["trials_finished"] == 4
    assert answer["eta_seconds"] == 16.0


def test_cursor_pages_skip_and_repeat_nothing_while_trials_are_inserted(
    client: TestClient, sqlite_url: str
) -> None:
    """A poller pages with `after` while the coordinator inserts trials from other threads."""
    study_id = client.post(
        "/api/v1/studies", json=tiny_study(budget={"trials": 1, "parallelism": 1})
    ).json()["id"]
    wait_done(client, study_id)
    definition = StudyDefinition.model_validate(
        tiny_study(budget={"trials": 400, "parallelism": 8})
    )
    with session_scope(sqlite_url) as session:
        target = coordinator.create_study(session, team_id=1, definition=definition).id
    stop = threading.Event()

    def insert() -> None:
        # Queue trials the way the coordinator does, without dispatching them; finish them so
        # that room opens for more.
        while not stop.is_set():
            with session_scope(sqlite_url) as session:
                ids = coordinator.queue_next(session, target)
                for trial_id in ids:
                    session.get_one(Trial, trial_id).state = "complete"  # type: ignore[assignment]
            if not ids:
                return

    writers = [threading.Thread(target=insert) for _ in range(3)]
    for writer in writers:
        writer.start()
    seen: list[int] = []
    cursor = -1
    try:
        while True:
            page = client.get(
                f"/api/v1/studies/{target}/trials", params={"after": cursor, "limit": 7}
            ).json()
            seen += [t["number"] for t in page["data"]]
            cursor = page["next_cursor"]
            if not page["data"] and not any(w.is_alive() for w in writers):
                break
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert seen == list(range(400))


def test_cancel_stops_running_trials_and_resume_runs_on_to_the_budget(
    client: TestClient, sqlite_url: str
) -> None:
    study_id = client.post(
        "/api/v1/studies", json=slow_study(budget={"trials": 4, "parallelism": 2})
    ).json()["id"]
    deadline = time.monotonic() + 30
    while client.get(f"/api/v1/studies/{study_id}").json()["trials_by_state"].get("running", 0) < 2:
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.1)
    cancelled = client.post(f"/api/v1/studies/{study_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"/api/v1/studies/{study_id}/cancel").status_code == 409
    deadline = time.monotonic() + 30
    while client.get(f"/api/v1/studies/{study_id}").json()["trials_in_flight"]:
        assert time.monotonic() < deadline, "running trials did not stop"
        time.sleep(0.1)
    trials = client.get(f"/api/v1/studies/{study_id}/trials").json()["data"]
    assert [(t["state"], t["reason"], t["value"]) for t in trials] == [
        ("failed", "cancelled", None)
    ] * 2
    with session_scope(sqlite_url) as session:  # the stopped trials keep the epochs they ran
        assert session.scalar(select(func.count(TrialMetric.id))) > 0

    resumed = client.post(f"/api/v1/studies/{study_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    assert client.post(f"/api/v1/studies/{study_id}/resume").status_code == 409
    client.post(f"/api/v1/studies/{study_id}/cancel")  # (the resumed trials are slow too)


def test_delete_removes_the_study_with_its_trials(client: TestClient, sqlite_url: str) -> None:
    study_id = client.post("/api/v1/studies", json=tiny_study()).json()["id"]
    wait_done(client, study_id)
    assert client.delete(f"/api/v1/studies/{study_id}").status_code == 204
    assert client.get(f"/api/v1/studies/{study_id}").status_code == 404
    with session_scope(sqlite_url) as session:
        assert session.scalar(select(func.count(Trial.id))) == 0
        assert session.scalar(select(func.count(TrialMetric.id))) == 0


def test_studies_list_filters_by_status_name_and_tag_and_pages(client: TestClient) -> None:
    ids = {}
    for name, tags in [("mlp-a", ["nightly", "mlp"]), ("mlp-b", ["mlp"]), ("soft_max", [])]:
        ids[name] = client.post("/api/v1/studies", json=tiny_study(name=name, tags=tags)).json()[
            "id"
        ]
    for study_id in ids.values():
        wait_done(client, study_id)
    client.post("/api/v1/studies", json=slow_study(name="slow"))

    def names(**params: object) -> list[str]:
        return [s["name"] for s in client.get("/api/v1/studies", params=params).json()["data"]]

    assert names(tag="mlp") == ["mlp-b", "mlp-a"]
    assert names(tag="nightly") == ["mlp-a"]
    assert names(tag="ml") == []  # a tag matches whole
    assert names(name="_") == ["soft_max"]  # no LIKE wildcard leaks through
    assert names(status="running") == ["slow"]
    assert names(status="complete", limit=2, offset=1) == ["mlp-b", "mlp-a"]
    assert client.get("/api/v1/studies", params={"status": "done"}).status_code == 422
    assert client.get("/api/v1/studies", params={"name": "\x00"}).status_code == 422
    client.post(f"/api/v1/studies/{client.get('/api/v1/studies').json()['data'][0]['id']}/cancel")


def test_a_trial_answers_with_its_config_and_learning_curve(client: TestClient) -> None:
    study_id = client.post("/api/v1/studies", json=tiny_study()).json()["id"]
    wait_done(client, study_id)
    trial = client.get(f"/api/v1/studies/{study_id}/trials/2").json()
    assert trial["number"] == 2
    assert trial["config"]["training"]["learning_rate"] == trial["params"]["training.learning_rate"]
    assert trial["config"]["training"]["optimizer"] == "adam"
    assert [point["step"] for point in trial["curve"]] == [1, 2, 3, 4, 5]
    assert all("val_loss" in point for point in trial["curve"])
    assert client.get(f"/api/v1/studies/{study_id}/trials/99").status_code == 404


def test_a_budget_above_the_server_limit_is_refused(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSEARCH_MAX_TRIALS", "10")
    get_settings.cache_clear()
    response = client.post(
        "/api/v1/studies", json=tiny_study(budget={"trials": 11, "parallelism": 1})
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "budget.trials"
