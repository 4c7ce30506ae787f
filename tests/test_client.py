"""`hpsearch.Client`, every public method, against a real `hpsearch serve` (SQLite, its local
pool) shared by the module; and the flat trials table (CSV parsed back equals the JSON)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpsearch import ApiError, Client
from hpsearch.client import Unreachable
from tests.conftest import ROOT, tiny_study
from tests.servers import free_port
from tests.test_cli_client import Server, _points_csv, server  # noqa: F401 (the fixture)


@pytest.fixture(scope="module")
def client(server: Server) -> Any:  # noqa: F811 (the fixture imported above)
    with Client(server.url, server.token) as connected:
        yield connected


@pytest.fixture(scope="module")
def done(client: Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny study, submitted from a study file and waited for with a progress bar."""
    path = tmp_path_factory.mktemp("study") / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_study(name="client-done")))
    study = client.create_study(path)
    assert study["status"] == "running"
    return client.wait(study, progress=True, interval_s=0.2)


def _decoded(cell: str) -> Any:
    """A cell of the trials CSV as the JSON has it: empty is null, JSON where it parses."""
    if cell == "":
        return None
    try:
        return json.loads(cell)
    except ValueError:
        return cell


def test_import_hpsearch_loads_no_server_code_and_client_none_either() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hpsearch; hpsearch.Client, hpsearch.ApiError;"
            " print(sorted(m for m in ('fastapi', 'sqlalchemy', 'celery', 'numpy', 'optuna')"
            " if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


def test_wait_returns_the_finished_study_and_best_has_the_full_config(
    client: Client, done: dict[str, Any]
) -> None:
    assert done["status"] == "complete" and done["trials_finished"] == 4
    assert client.get_study(done["id"]) == done
    best = client.best(done)
    assert best is not None and best["number"] == done["best_trial"]["number"]
    lr = best["params"]["training.learning_rate"]
    # The whole config it trained with: the study's base config with its params written in.
    assert best["config"]["training"] == {**best["config"]["training"], "learning_rate": lr}
    assert best["config"]["dataset"]["name"] == "iris"
    assert best["config"]["model"]["type"] == "softmax"
    assert client.definition(done)["name"] == "client-done"


def test_studies_lists_and_filters(client: Client, done: dict[str, Any]) -> None:
    found = client.studies(name="client-done")
    assert [s["id"] for s in found] == [done["id"]]
    assert found[0]["trials_finished"] == 4
    assert done["id"] in [s["id"] for s in client.studies(status="complete")]
    assert client.studies(name=f"absent-{uuid.uuid4().hex[:8]}") == []


def test_trials_csv_parsed_back_equals_the_json_and_the_records(
    client: Client, done: dict[str, Any]
) -> None:
    records = client.trials(done)
    as_json = json.loads(client.export_trials(done, "json"))
    reader = csv.DictReader(io.StringIO(client.export_trials(done, "csv")))
    as_csv = [{k: _decoded(v) for k, v in row.items()} for row in reader]

    assert as_csv == as_json
    columns = reader.fieldnames or []
    assert columns[:4] == ["number", "state", "reason", "value"]
    assert columns[-2:] == ["started_at", "finished_at"]
    assert "values.val_accuracy" in columns and "params.training.learning_rate" in columns
    assert [r["number"] for r in as_json] == [t["number"] for t in records] == [0, 1, 2, 3]
    for row, trial in zip(as_json, records, strict=True):
        assert row["state"] == trial["state"] and row["value"] == trial["value"]
        assert row["params.training.learning_rate"] == trial["params"]["training.learning_rate"]
        assert row["values.val_accuracy"] == trial["values"]["val_accuracy"]
        assert row["finished_at"] == trial["finished_at"]


def test_trials_frame_is_a_dataframe_when_pandas_is_installed(
    client: Client, done: dict[str, Any]
) -> None:
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ApiError, match="pip install pandas"):
            client.trials_frame(done)
        return
    frame = client.trials_frame(done)
    assert list(frame["number"]) == [0, 1, 2, 3]
    assert "params.training.learning_rate" in frame.columns


def test_a_bad_study_names_the_field(client: Client) -> None:
    with pytest.raises(ApiError) as refused:
        client.create_study(tiny_study(budget={"trials": -3}))
    assert refused.value.status == 422
    assert refused.value.field == "budget.trials"
    assert "budget.trials" in refused.value.message


def test_datasets_upload_list_delete(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_bytes(_points_csv(shift=0.25))
    uploaded = client.upload_dataset(path, target="label", name="client-points")
    assert uploaded["ref"] == "client-points@1" and uploaded["summary"]["rows"] == 90
    again = client.upload_dataset(path, target="label", name="client-points")
    assert again["id"] == uploaded["id"]  # the same bytes as the latest version
    assert uploaded["id"] in [d["id"] for d in client.datasets()]
    client.delete_dataset(uploaded["id"])
    assert uploaded["id"] not in [d["id"] for d in client.datasets()]

    with pytest.raises(ApiError) as refused:
        client.upload_dataset(path, target="no-such-column")
    assert (refused.value.status, refused.value.field) == (422, "target")


def test_presets_publish_list_get_and_export_a_study_that_runs(
    client: Client, done: dict[str, Any]
) -> None:
    number = done["best_trial"]["number"]
    published = client.publish_preset(done, number, "client-best")
    assert published["ref"] == "local/client-best@1"
    assert "local/client-best@1" in [p["ref"] for p in client.presets()]
    got = client.preset("local/client-best")
    assert got["config"] == client.best(done)["config"]

    exported = client.export_preset("local/client-best@latest")
    assert exported.startswith("# Preset local/client-best@1")
    study = client.create_study(yaml.safe_load(exported))
    ran = client.wait(study, interval_s=0.2)
    assert ran["status"] == "complete" and ran["trials_finished"] == 1
    again = ran["best_trial"]["values"]
    assert again["val_accuracy"] == pytest.approx(got["values"]["val_accuracy"])
    assert json.loads(client.export_preset("local/client-best@1", "json")) == yaml.safe_load(
        exported
    )


def test_one_error_type_for_every_failure(
    client: Client,
    server: Server,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HPSEARCH_TOKEN", raising=False)
    monkeypatch.delenv("HPSEARCH_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no saved login
    with pytest.raises(ApiError) as no_token:
        Client(server.url)
    assert (no_token.value.status, no_token.value.code) == (None, "no_token")
    assert "HPSEARCH_TOKEN" in str(no_token.value)

    monkeypatch.setenv("HPSEARCH_URL", server.url)
    monkeypatch.setenv("HPSEARCH_TOKEN", server.token)
    with Client() as from_environment:
        assert from_environment.me()["name"] == "admin"

    dead = f"http://127.0.0.1:{free_port()}"
    with Client(dead, "hps_x") as nowhere, pytest.raises(ApiError) as unreachable:
        nowhere.studies()
    assert isinstance(unreachable.value, Unreachable) and unreachable.value.status is None
    assert dead in str(unreachable.value)

    with Client(server.url, "hps_wrong") as wrong, pytest.raises(ApiError) as refused:
        wrong.studies()
    assert refused.value.status == 401

    with pytest.raises(ApiError) as bad_ref:
        client.preset("no-slash")
    assert bad_ref.value.field == "ref"
    with pytest.raises(ApiError) as missing:
        client.trials(10**6)
    assert missing.value.status == 404


# Last: its deleted study's trials may still be stopping when it returns.
def test_cancel_resume_delete(client: Client) -> None:
    study = client.create_study(tiny_study(name="client-cancel", budget={"trials": 500}))
    assert client.cancel_study(study)["status"] == "cancelled"
    with pytest.raises(ApiError) as twice:
        client.cancel_study(study["id"])
    assert (twice.value.status, twice.value.field) == (409, "status")
    assert client.resume_study(study)["status"] == "running"
    client.cancel_study(study)
    client.delete_study(study)
    with pytest.raises(ApiError) as gone:
        client.get_study(study)
    assert (gone.value.status, gone.value.code) == (404, "not_found")
