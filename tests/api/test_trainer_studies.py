"""Studies of a trainer plugin (the example `ridge`, installed by `make install-dev`): checked
against its announced schema and metrics at submission, with errors naming the field; a trial
an exception of the trainer ended keeps its traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hpsearch.api.main import create_app
from hpsearch.db import trainers
from hpsearch.db.models import utcnow
from hpsearch.db.session import session_scope
from tests.api.conftest import MakeToken, bearer, wait_done
from tests.conftest import tiny_study
from tests.trainers.test_runner import plugin_study


def ridge_study(**overrides: object) -> dict:
    study: dict = {
        "name": "ridge",
        "trainer": "ridge",
        "config": {"data": {"n_samples": 100, "n_features": 4}, "steps": 20},
        "space": {"alpha": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}},
        "objective": {"metric": "val_rmse", "direction": "minimize"},
        "budget": {"trials": 3, "parallelism": 1},
    }
    study.update(overrides)
    return study


def test_a_ridge_study_runs_through_the_api(client: TestClient) -> None:
    created = client.post("/api/v1/studies", json=ridge_study())
    assert created.status_code == 201, created.text
    study = wait_done(client, created.json()["id"])
    assert study["status"] == "complete" and study["trials_finished"] == 3
    trial = client.get(f"/api/v1/studies/{study['id']}/trials/0").json()
    assert trial["state"] == "complete"
    assert trial["config"]["alpha"] == trial["params"]["alpha"]
    assert trial["config"]["steps"] == 20 and len(trial["curve"]) == 20


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"trainer": "lasso"}, "trainer"),
        ({"config": {"alpha": -1}}, "config.alpha"),
        ({"config": {"data": {"n_samples": 3}}}, "config.data.n_samples"),
        ({"config": {"alphaa": 1}}, "config"),
        ({"space": {"beta": {"type": "float", "low": 0, "high": 1}}}, "space"),
        ({"space": {"alpha": {"type": "float", "low": -1, "high": 1}}}, "space.alpha.low"),
        (
            {"space": {"steps": {"type": "categorical", "choices": [10, "many"]}}},
            "space.steps.choices[1]",
        ),
        ({"objective": {"metric": "val_accuracy", "direction": "maximize"}}, "objective"),
        (
            {
                "pruner": {"type": "median"},
                "objective": {"metric": "train_seconds", "direction": "minimize"},
            },
            "pruner",
        ),
        ({"pruner": {"type": "hyperband"}}, "pruner.max_steps"),
        ({"dataset": {"name": "iris"}}, "dataset"),
        # The ridge trainer does not resume its state: population-based training cannot run it.
        (
            {
                "strategy": {
                    "type": "pbt",
                    "population": 2,
                    "interval": 10,
                    "steps_setting": "steps",
                },
                "budget": {"trials": 4},
            },
            "strategy.type",
        ),
    ],
)
def test_a_study_the_trainer_cannot_run_is_422_naming_the_field(
    client: TestClient, change: dict, field: str
) -> None:
    answer = client.post("/api/v1/studies", json=ridge_study(**change))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    assert error["message"].startswith(field)
    assert client.get("/api/v1/studies").json()["count"] == 0


def test_the_builtin_trainer_takes_no_config(client: TestClient) -> None:
    answer = client.post("/api/v1/studies", json=tiny_study(config={"x": 1}))
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "config"


def test_the_trainers_the_workers_offer_are_listed_with_their_schema(client: TestClient) -> None:
    listed = {t["name"]: t for t in client.get("/api/v1/trainers").json()}
    assert {"numpy", "ridge"} <= set(listed)
    ridge = listed["ridge"]
    # The local pool of this app offers them: one live worker each.
    assert ridge["workers"] == listed["numpy"]["workers"] == 1
    assert ridge["version"] == "0.1.0" and "val_rmse" in ridge["final_metrics"]
    assert (ridge["resumable"], listed["numpy"]["resumable"]) == (False, True)
    assert ridge["config_schema"]["properties"]["alpha"]["minimum"] == 0
    assert ridge["hosts"] == listed["numpy"]["hosts"] == [socket.gethostname()]
    settings = {s["path"]: s for s in ridge["settings"]}
    assert settings["alpha"] == {
        "path": "alpha",
        "type": "number",
        "default": 1.0,
        "required": False,
        "bounds": ">= 0",
        "description": "L2 penalty on the weights.",
    }
    assert settings["data.n_samples"]["bounds"] == ">= 10, <= 1000000"
    assert settings["data.upload"]["type"] == "string or null"
    engine = {s["path"]: s for s in listed["numpy"]["settings"]}
    # A dataset is named by one of three settings, none of them required alone.
    assert {"dataset.name", "dataset.upload", "dataset.upload_id"} <= engine.keys()
    assert engine["model.hidden"]["default"] == [64]
    assert engine["model.hidden"]["type"] == "list of integer"
    assert engine["training.optimizer"]["type"].startswith("one of: gd, sgd, ")
    # One path that members of a union share is listed once, with each member's type.
    assert engine["training.schedule.type"]["type"] == (
        '"constant" | "step" | "exponential" | "cosine"'
    )


def offer_from_a_gone_worker(url: str) -> None:
    """Record trainer `gone` (one required integer setting `k`) as offered by a worker last
    seen a day ago: listed, but by no live worker."""
    offer = {
        "name": "gone",
        "version": "2",
        "config_schema": {"type": "object", "properties": {"k": {"type": "integer"}}},
        "step_metrics": [],
        "final_metrics": ["loss"],
    }
    with session_scope(url) as session:
        trainers.offer(session, "old-host:1", "old-host", [offer], utcnow() - timedelta(days=1))


def test_a_trainer_no_live_worker_offers_is_listed_with_none(
    client: TestClient, sqlite_url: str
) -> None:
    offer_from_a_gone_worker(sqlite_url)
    listed = {t["name"]: t for t in client.get("/api/v1/trainers").json()}
    assert (listed["gone"]["workers"], listed["gone"]["hosts"]) == (0, [])
    assert listed["gone"]["settings"] == [
        {
            "path": "k",
            "type": "integer",
            "default": None,
            "required": True,
            "bounds": None,
            "description": None,
        }
    ]


@pytest.fixture
def plugin_client(
    test_trainers: Path, sqlite_url: str, make_token: MakeToken
) -> Iterator[TestClient]:
    """A client of an app whose local pool has the test trainers (installed before it starts,
    so that it offers them), signed in as `ana` of team `alpha`."""
    with TestClient(create_app(), headers=bearer(make_token("ana", "alpha"))) as test_client:
        yield test_client


def test_a_trial_an_exception_ended_carries_its_traceback(plugin_client: TestClient) -> None:
    study = plugin_study("raises", config={"x": 0.25})
    created = plugin_client.post("/api/v1/studies", json=study)
    assert created.status_code == 201, created.text
    study_id = created.json()["id"]
    wait_done(plugin_client, study_id)
    trial = plugin_client.get(f"/api/v1/studies/{study_id}/trials/0").json()
    assert (trial["state"], trial["reason"]) == (
        "failed",
        "error: ValueError: cannot train at x=0.25",
    )
    lines = trial["traceback"].splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "faulty_trainers.py" in lines[-3] and lines[-3].endswith(", in helper")
    assert lines[-1] == "ValueError: cannot train at x=0.25"
    # Listings carry the reason only: the traceback is on the trial's own page.
    (listed,) = plugin_client.get(f"/api/v1/studies/{study_id}/trials").json()["data"]
    assert listed["reason"] == trial["reason"] and "traceback" not in listed


def test_a_trial_no_exception_ended_has_no_traceback(client: TestClient) -> None:
    created = client.post("/api/v1/studies", json=tiny_study(budget={"trials": 1}))
    study_id = created.json()["id"]
    assert wait_done(client, study_id)["status"] == "complete"
    trial = client.get(f"/api/v1/studies/{study_id}/trials/0").json()
    assert trial["state"] == "complete" and trial["traceback"] is None
