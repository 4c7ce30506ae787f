"""Uploading datasets (limits, validation, one row per content) and sharing presets
(versions, visibility, warm start)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from hpsearch.db.settings import get_settings
from hpsearch.search.definition import StudyDefinition
from tests.api.conftest import MakeToken, bearer, table_csv, wait_done
from tests.conftest import tiny_study


def upload(client: TestClient, content: bytes, filename: str = "t.csv", **data: str | None):  # type: ignore[no-untyped-def]
    fields = {k: v for k, v in data.items() if v is not None}
    return client.post(
        "/api/v1/datasets", files={"file": (filename, content)}, data=fields or {"target": "label"}
    )


def test_an_upload_is_validated_summarised_and_stored_once(client: TestClient) -> None:
    first = upload(client, table_csv())
    assert first.status_code == 201, first.text
    dataset = first.json()
    assert dataset["summary"]["rows"] == 30
    assert dataset["summary"]["columns"] == {
        "x1": "numeric",
        "x2": "numeric",
        "colour": "categorical",
        "label": "target",
    }
    assert dataset["summary"]["classes"] == ["no", "yes"]
    assert (dataset["name"], dataset["version"], dataset["ref"]) == ("t", 1, "t@1")
    again = upload(client, table_csv(), filename="t.csv")
    assert again.status_code == 200 and again.json()["id"] == dataset["id"]
    assert [d["id"] for d in client.get("/api/v1/datasets").json()] == [dataset["id"]]


def test_uploads_under_one_name_are_its_versions(client: TestClient) -> None:
    first = upload(client, table_csv(), target="label", name="churn").json()
    assert first["ref"] == "churn@1"
    # The same bytes as the latest version are a retry; other bytes, the next version.
    again = upload(client, table_csv(), target="label", name="churn")
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    second = upload(client, table_csv(40), target="label", name="churn")
    assert second.status_code == 201 and second.json()["ref"] == "churn@2"
    # The same bytes under another name are another dataset.
    other = upload(client, table_csv(40), target="label", name="churn-copy")
    assert other.status_code == 201 and other.json()["ref"] == "churn-copy@1"
    listed = [d["ref"] for d in client.get("/api/v1/datasets").json()]
    assert listed == ["churn-copy@1", "churn@2", "churn@1"]
    # A file's name that is no dataset name gives one; a name that is not one is refused.
    spaced = upload(client, table_csv(50), "my data (v2).csv", target="label")
    assert spaced.json()["ref"] == "my_data__v2_@1", spaced.text
    for bad in ("123", "a b", "churn@2", ".hidden"):
        refused = upload(client, table_csv(), target="label", name=bad)
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "name", bad


def test_an_npz_upload_is_read_without_pickle(client: TestClient) -> None:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, X=rng.normal(size=(20, 3)), y=rng.integers(0, 2, 20))
    answer = upload(client, buffer.getvalue(), "points.npz", name="points")
    assert answer.status_code == 201, answer.text
    assert answer.json()["summary"]["rows"] == 20 and answer.json()["format"] == "npz"
    pickled = io.BytesIO()
    np.savez(pickled, X=np.array([{"a": 1}] * 20, dtype=object), y=np.zeros(20))
    refused = upload(client, pickled.getvalue(), "evil.npz", name="evil")
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "file"


@pytest.mark.parametrize(
    ("content", "data", "field", "words"),
    [
        (b"a,b\n1,2\n", {"target": "b"}, "file", "at least 10"),
        (table_csv(), {"target": "price"}, "target", "'price' is not a column"),
        (table_csv(), {}, "target", "target column"),
        (b"\x00\xff\xfe not a table", {"target": "x"}, "file", "unparseable"),
    ],
)
def test_an_unusable_upload_is_422_naming_the_problem(
    client: TestClient, content: bytes, data: dict, field: str, words: str
) -> None:
    answer = client.post("/api/v1/datasets", files={"file": ("t.csv", content)}, data=data)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and words in error["message"]
    assert client.get("/api/v1/datasets").json() == []


def test_an_upload_over_the_limit_is_413(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSEARCH_MAX_UPLOAD_BYTES", "2000")
    get_settings.cache_clear()
    big = table_csv(200)
    assert len(big) > 2000
    answer = upload(client, big)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "too_large"
    assert upload(client, table_csv(30)).status_code == 201  # under the limit, still fine
    # Bodies that do not say their length are counted as they arrive.
    chunks = iter([b"{" + b" " * 1500, b" " * 1500 + b"}"])
    monkeypatch.setenv("HPSEARCH_MAX_BODY_BYTES", "1000")
    get_settings.cache_clear()
    streamed = client.post(
        "/api/v1/studies", content=chunks, headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


def test_a_study_trains_on_an_uploaded_dataset(client: TestClient) -> None:
    dataset_id = upload(client, table_csv(60)).json()["id"]
    study = tiny_study(dataset={"name": str(dataset_id), "target": "label"})
    created = client.post("/api/v1/studies", json=study)
    assert created.status_code == 201, created.text
    done = wait_done(client, created.json()["id"])
    assert done["trials_by_state"] == {"complete": 4}
    wrong = client.post(
        "/api/v1/studies", json=tiny_study(dataset={"name": str(dataset_id), "target": "x"})
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "dataset.target"
    unknown = client.post("/api/v1/studies", json=tiny_study(dataset={"name": "9999"}))
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "dataset.name"


def test_a_study_names_an_upload_by_name_and_keeps_the_version_it_resolved(
    client: TestClient, make_token: MakeToken
) -> None:
    v1 = upload(client, table_csv(60), target="label", name="churn").json()
    on_churn = tiny_study(dataset={"upload": "churn", "target": "label"}, budget={"trials": 6})
    created = client.post("/api/v1/studies", json=on_churn)
    assert created.status_code == 201, created.text
    study_id = created.json()["id"]
    assert created.json()["datasets"] == {"churn": {"id": v1["id"], "version": 1}}
    client.post(f"/api/v1/studies/{study_id}/cancel")
    before = len(client.get(f"/api/v1/studies/{study_id}/trials").json()["data"])
    # Version 2 has no `label` column: a trial trained on it would fail.
    renamed = table_csv(60).replace(b"x1,x2,colour,label", b"x1,x2,colour,y")
    v2 = upload(client, renamed, target="y", name="churn").json()
    assert v2["ref"] == "churn@2"
    client.post(f"/api/v1/studies/{study_id}/resume")
    done = wait_done(client, study_id)
    assert done["datasets"] == {"churn": {"id": v1["id"], "version": 1}}
    trials = client.get(f"/api/v1/studies/{study_id}/trials", params={"after": before - 1})
    resumed = [(t["state"], t["reason"]) for t in trials.json()["data"]]
    assert resumed and set(resumed) == {("complete", None)}, resumed
    # Now `churn` is version 2; `churn@1`, `upload_id` and the legacy id as `name` are v1.
    latest = client.post(
        "/api/v1/studies", json=tiny_study(dataset={"upload": "churn", "target": "y"})
    )
    assert latest.json()["datasets"] == {"churn": {"id": v2["id"], "version": 2}}, latest.text
    for dataset in ({"upload": "churn@1"}, {"upload_id": v1["id"]}, {"name": str(v1["id"])}):
        study = client.post(
            "/api/v1/studies",
            json=tiny_study(dataset={**dataset, "target": "label"}, budget={"trials": 1}),
        )
        assert study.status_code == 201, study.text
        assert wait_done(client, study.json()["id"])["trials_by_state"] == {"complete": 1}
    # Names that resolve to nothing here, another team's included, name the field.
    bob = bearer(make_token("bob", "beta"))
    for dataset, field, headers in [
        ({"upload": "churn@3"}, "dataset.upload", None),
        ({"upload": "nothing"}, "dataset.upload", None),
        ({"upload": "churn@x"}, "dataset.upload", None),
        ({"upload": "churn"}, "dataset.upload", bob),
        ({"upload_id": v1["id"]}, "dataset.upload_id", bob),
        ({"name": "churn"}, "dataset.name", None),
        ({"upload": "churn", "upload_id": v1["id"]}, "dataset", None),
    ]:
        refused = client.post("/api/v1/studies", json=tiny_study(dataset=dataset), headers=headers)
        assert refused.status_code == 422, (dataset, refused.text)
        assert refused.json()["error"]["field"] == field, (dataset, refused.text)


def test_a_preset_names_the_version_its_trial_trained_on(client: TestClient) -> None:
    v1 = upload(client, table_csv(60), target="label", name="churn").json()
    study = tiny_study(dataset={"upload": "churn", "target": "label"})
    done = wait_done(client, client.post("/api/v1/studies", json=study).json()["id"])
    upload(client, table_csv(70), target="label", name="churn")
    published = client.post(
        "/api/v1/presets", json={"study_id": done["id"], "trial_number": 0, "name": "on-churn"}
    ).json()
    assert published["config"]["dataset"]["upload"] == "churn@1"
    assert published["dataset_hash"] == v1["content_hash"]


def finished_study(client: TestClient) -> dict:
    study_id = client.post("/api/v1/studies", json=tiny_study()).json()["id"]
    return wait_done(client, study_id)


def test_publishing_twice_makes_versions_1_and_2_with_provenance(client: TestClient) -> None:
    study = finished_study(client)
    best = study["best_trial"]
    for number in (best["number"], 0):
        answer = client.post(
            "/api/v1/presets",
            json={"study_id": study["id"], "trial_number": number, "name": "iris-soft"},
        )
        assert answer.status_code == 201, answer.text
    versions = client.get("/api/v1/presets/alpha/iris-soft").json()["data"]
    assert [v["version"] for v in versions] == [1, 2]
    first = client.get("/api/v1/presets/alpha/iris-soft/1").json()
    assert first["ref"] == "alpha/iris-soft@1"
    assert first["values"] == best["values"] and first["trial_id"] == best["id"]
    assert first["trial_number"] == best["number"]
    assert first["study_id"] == study["id"] and first["created_by"] == "ana"
    assert len(first["dataset_hash"]) == 64 and first["engine_version"]
    assert first["config"]["training"]["learning_rate"] == best["params"]["training.learning_rate"]
    assert client.get("/api/v1/presets/alpha/iris-soft/latest").json()["version"] == 2
    exported = client.get("/api/v1/presets/alpha/iris-soft/1/export", params={"format": "yaml"})
    assert exported.headers["content-type"].startswith("application/yaml")
    study_file = yaml.safe_load(exported.text)
    # A study file of one trial of the preset's config, with its study's objective.
    definition = StudyDefinition.model_validate(study_file)
    assert definition.base_config() == first["config"] and definition.space == {}
    assert definition.budget.trials == 1 and study_file["objective"] == study["objectives"]
    assert exported.text.startswith("# Preset alpha/iris-soft@1 (team), from study")
    as_json = client.get("/api/v1/presets/alpha/iris-soft/1/export", params={"format": "json"})
    assert as_json.json() == study_file


def test_only_complete_trials_are_published(client: TestClient) -> None:
    study = tiny_study(
        dataset={"name": "digits"},
        model={"type": "mlp", "hidden": [64]},
        training={"optimizer": "sgd", "learning_rate": 10.0, "epochs": 5},
    )
    study_id = client.post(
        "/api/v1/studies", json={**study, "space": {}, "budget": {"trials": 1, "parallelism": 1}}
    ).json()["id"]
    done = wait_done(client, study_id)
    assert done["trials_by_state"] == {"failed": 1}
    answer = client.post(
        "/api/v1/presets", json={"study_id": study_id, "trial_number": 0, "name": "bad"}
    )
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "trial_number"


def test_a_public_preset_is_seen_by_other_teams_and_a_team_one_is_not(
    client: TestClient, make_token: MakeToken
) -> None:
    study = finished_study(client)
    for name, visibility in [("shared", "public"), ("private", "team")]:
        client.post(
            "/api/v1/presets",
            json={
                "study_id": study["id"],
                "trial_number": 0,
                "name": name,
                "visibility": visibility,
            },
        )
    bob = bearer(make_token("bob", "beta"))
    refs = [p["ref"] for p in client.get("/api/v1/presets", headers=bob).json()["data"]]
    assert refs == ["alpha/shared@1"]
    assert client.get("/api/v1/presets/alpha/shared/1", headers=bob).status_code == 200
    assert client.get("/api/v1/presets/alpha/private/1", headers=bob).status_code == 404


def test_a_warm_start_preset_runs_first_and_counts_in_the_budget(client: TestClient) -> None:
    study = finished_study(client)
    best = study["best_trial"]
    client.post(
        "/api/v1/presets",
        json={"study_id": study["id"], "trial_number": best["number"], "name": "lr"},
    )
    warm = tiny_study(
        warm_start={"preset": "alpha/lr@latest"}, strategy={"type": "random", "seed": 7}
    )
    created = client.post("/api/v1/studies", json=warm)
    assert created.status_code == 201, created.text
    done = wait_done(client, created.json()["id"])
    assert done["trials_finished"] == 4
    first = client.get(f"/api/v1/studies/{done['id']}/trials/0").json()
    assert first["params"] == best["params"]
    assert first["values"]["val_accuracy"] == pytest.approx(best["values"]["val_accuracy"])
    missing = client.post("/api/v1/studies", json=tiny_study(warm_start={"preset": "alpha/lr@9"}))
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "warm_start.preset"
    outside = tiny_study(
        warm_start={"preset": "alpha/lr@1"},
        space={"training.learning_rate": {"type": "float", "low": 0.6, "high": 0.9}},
    )
    refused = client.post("/api/v1/studies", json=outside)
    assert refused.status_code == 422 and "not a point" in refused.json()["error"]["message"]
