from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hpsearch.api.main import create_app
from hpsearch.search.strategies.random import RandomStrategy
from tests.api.conftest import MakeToken, bearer, wait_done
from tests.conftest import tiny_study


def test_a_study_runs_to_its_budget_on_the_local_pool(client: TestClient) -> None:
    created = client.post("/api/v1/studies", json=tiny_study())
    assert created.status_code == 201, created.text
    study = wait_done(client, created.json()["id"])
    assert study["status"] == "complete"
    assert study["trials_finished"] == study["budget_trials"] == 4
    assert study["best_trial"]["values"]["val_accuracy"] == study["best_trial"]["value"]
    listed = client.get("/api/v1/studies").json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == study["id"]
    summary = listed["data"][0]
    assert summary["strategy"] == "random" and summary["trials_finished"] == 4
    assert summary["best_value"] == study["best_trial"]["value"]
    assert summary["best_metric"] == "val_accuracy"


def test_the_list_shows_the_best_value_in_the_objectives_direction(client: TestClient) -> None:
    minimize = tiny_study(objective={"metric": "val_loss", "direction": "minimize"})
    study = wait_done(client, client.post("/api/v1/studies", json=minimize).json()["id"])
    trials = client.get(f"/api/v1/studies/{study['id']}/trials").json()["data"]
    (summary,) = client.get("/api/v1/studies").json()["data"]
    assert summary["best_value"] == min(t["value"] for t in trials) == study["best_trial"]["value"]
    assert summary["trials_finished"] == 4


def test_trials_page_by_cursor(client: TestClient) -> None:
    study_id = client.post("/api/v1/studies", json=tiny_study()).json()["id"]
    wait_done(client, study_id)
    first = client.get(f"/api/v1/studies/{study_id}/trials", params={"limit": 3}).json()
    assert [t["number"] for t in first["data"]] == [0, 1, 2]
    rest = client.get(
        f"/api/v1/studies/{study_id}/trials", params={"after": first["next_cursor"]}
    ).json()
    assert [t["number"] for t in rest["data"]] == [3]
    empty = client.get(
        f"/api/v1/studies/{study_id}/trials", params={"after": rest["next_cursor"]}
    ).json()
    assert empty["data"] == [] and empty["next_cursor"] == rest["next_cursor"]


def test_after_is_a_trial_number_whatever_the_trials_ids(client: TestClient) -> None:
    # Another study's trials first, one of them deleted with its study: this study's trial
    # ids start well after 1, its numbers at 0.
    for _ in range(2):
        wait_done(client, client.post("/api/v1/studies", json=tiny_study()).json()["id"])
    client.delete(f"/api/v1/studies/{client.get('/api/v1/studies').json()['data'][0]['id']}")
    study_id = client.post("/api/v1/studies", json=tiny_study(budget={"trials": 8})).json()["id"]
    wait_done(client, study_id)
    path = f"/api/v1/studies/{study_id}/trials"
    page = client.get(path, params={"after": 5}).json()
    assert [t["number"] for t in page["data"]] == [6, 7] and page["next_cursor"] == 7
    every = client.get(path).json()
    assert [t["number"] for t in every["data"]] == list(range(8))
    assert client.get(path, params={"after": -1}).json() == every


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"budget": {"trials": 0}}, "budget.trials"),
        ({"name": "nul\x00byte"}, "name"),  # PostgreSQL refuses NUL in text: a 422, not a 500
        ({"training": {"learning_rate": -1}}, "training.learning_rate"),
        ({"strategy": {"type": "annealing"}}, "strategy"),
        ({"space": {"training.lr": {"type": "float", "low": 0, "high": 1}}}, "space"),
        (
            {"space": {"training.learning_rate": {"type": "float", "low": 1, "high": 0.1}}},
            "space.training.learning_rate",
        ),
        (
            {"strategy": {"type": "coarse_to_fine", "rounds": 2, "epochs_per_round": [0.5]}},
            "strategy.epochs_per_round",
        ),
        (
            {
                "strategy": {"type": "coarse_to_fine", "rounds": 1, "epochs_per_round": [0.5]},
                "space": {"training.epochs": {"type": "int", "low": 1, "high": 4}},
            },
            "strategy.epochs_per_round",
        ),
        ({"strategy": {"type": "coarse_to_fine", "promote_last": 1.5}}, "strategy.promote_last"),
    ],
)
def test_invalid_studies_get_422_naming_the_field(
    client: TestClient, change: dict, field: str
) -> None:
    response = client.post("/api/v1/studies", json=tiny_study(**change))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"].startswith(field)
    assert client.get("/api/v1/studies").json()["count"] == 0


def test_unknown_study_is_404_in_the_error_shape(client: TestClient) -> None:
    response = client.get("/api/v1/studies/999")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "study not found", "field": None}
    }
    assert client.get("/api/v1/studies/999/trials").status_code == 404


def test_a_multi_objective_study_reports_a_non_dominated_front(client: TestClient) -> None:
    objectives = [
        {"metric": "val_accuracy", "direction": "maximize"},
        {"metric": "train_seconds", "direction": "minimize"},
    ]
    space = {
        "training.learning_rate": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
        "training.epochs": {"type": "int", "low": 1, "high": 8},
    }
    study = tiny_study(objective=objectives, space=space, budget={"trials": 8, "parallelism": 2})
    study_id = client.post("/api/v1/studies", json=study).json()["id"]
    done = wait_done(client, study_id)
    trials = client.get(f"/api/v1/studies/{study_id}/trials").json()["data"]
    points = {
        t["id"]: (t["values"]["val_accuracy"], t["values"]["train_seconds"])
        for t in trials
        if t["state"] == "complete"
    }
    front = {t["id"] for t in done["pareto_front"]}
    assert front

    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points.values())

    assert front == {i for i, p in points.items() if not dominated(p)}


def test_a_coarse_to_fine_study_returns_each_rounds_epochs_and_per_arm_boxes(
    client: TestClient,
) -> None:
    strategy = {"type": "coarse_to_fine", "rounds": 2, "samples_per_round": 4, "keep": 0.5}
    space = {
        "training.optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
        "training.learning_rate": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
    }
    study = tiny_study(space=space, strategy=strategy, budget={"trials": 8, "parallelism": 4})
    study_id = client.post("/api/v1/studies", json=study).json()["id"]
    state = wait_done(client, study_id)["strategy_state"]
    assert state["arm"] == "training.optimizer"
    first, second = state["rounds"]
    assert (first["epochs"], first["fraction"], second["epochs"]) == (2, 0.5, 5)
    whole = {"low": 0.001, "high": 0.5, "log": True}
    assert first["arms"] == {arm: {"training.learning_rate": whole} for arm in ("sgd", "adam")}
    for box in second["arms"].values():
        lr = box["training.learning_rate"]
        assert whole["low"] <= lr["low"] < lr["high"] <= whole["high"]
    trials = client.get(f"/api/v1/studies/{study_id}/trials").json()["data"]
    # A round-0 trial trained, and shows, its 2 epochs; the result names each arm's best.
    assert [t["params"].get("training.epochs") for t in trials][:4] == [2] * 4
    result = state["result"]
    assert result["winner"] in {"sgd", "adam"}
    winner = result["arms"][result["winner"]]
    assert winner["epochs"] == 5 and winner["params"]["training.optimizer"] == result["winner"]


def test_importances_of_a_finished_study_sum_to_one_and_answer_304_when_unchanged(
    client: TestClient,
) -> None:
    space = {
        "training.learning_rate": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
        "training.batch_size": {"type": "int", "low": 8, "high": 64},
    }
    budget = {"trials": 10, "parallelism": 2}  # importances need 10 complete trials
    created = client.post("/api/v1/studies", json=tiny_study(space=space, budget=budget)).json()
    wait_done(client, created["id"])
    answer = client.get(f"/api/v1/studies/{created['id']}/importances")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["reason"] is None and body["metric"] == "val_accuracy"
    assert body["trials_used"] == 10 and set(body["importances"]) == set(space)
    assert sum(body["importances"].values()) == pytest.approx(1)
    again = client.get(
        f"/api/v1/studies/{created['id']}/importances",
        headers={"If-None-Match": answer.headers["ETag"]},
    )
    assert again.status_code == 304


def test_importances_of_a_one_parameter_study_say_why_there_are_none(client: TestClient) -> None:
    created = client.post("/api/v1/studies", json=tiny_study(budget={"trials": 1})).json()
    body = client.get(f"/api/v1/studies/{created['id']}/importances").json()
    assert body["importances"] == {} and "one parameter" in body["reason"]


def test_a_study_whose_first_trials_cannot_be_queued_is_not_stored(
    sqlite_url: str, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> list:
        raise RuntimeError("a strategy bug")

    monkeypatch.setattr(RandomStrategy, "ask", broken)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        client.headers.update(bearer(make_token("ana", "alpha")))
        answer = client.post("/api/v1/studies", json=tiny_study())
        assert answer.status_code == 500
        assert "a strategy bug" not in answer.text
        # Not a study left running with no trial that nothing would ever queue.
        assert client.get("/api/v1/studies").json()["count"] == 0
