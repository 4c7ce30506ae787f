"""The client commands against a real `hpsearch serve` on 127.0.0.1 (SQLite, its local pool).

Both the server and the commands run this checkout's code (`python -m hpsearch.cli.main`; the
venv's editable install maps hpsearch onto this checkout, which tests/conftest.py checks).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hpsearch.client import (
    Client,
    Unreachable,
    new_idempotency_key,
)
from hpsearch.worker.engine.training import evaluate_weights
from tests.conftest import ROOT, tiny_study
from tests.servers import ManagedProcess, free_port

HPSEARCH = [sys.executable, "-m", "hpsearch.cli.main"]
WATCH_TIMEOUT_S = 120  # a bound for a hung command, not a speed requirement


@dataclass(frozen=True)
class Server:
    url: str
    token: str

    def client(self, transport: httpx.BaseTransport | None = None) -> Client:
        return Client(self.url, self.token, transport=transport)


def _environment() -> dict[str, str]:
    """This process's environment without any HPSEARCH_ setting, running this checkout."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
    return kept | {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`hpsearch serve` on a free port and a fresh SQLite file; its first-start admin token."""
    folder = tmp_path_factory.mktemp("cli-client-server")
    port = free_port()
    api = ManagedProcess(
        [*HPSEARCH, "serve", "--host", "127.0.0.1", "--port", str(port)],
        log_dir=folder,
        name="api",
        env=_environment() | {"HPSEARCH_DATABASE_URL": f"sqlite:///{folder / 'hpsearch.db'}"},
        inherit_env=False,
        cwd=ROOT,
    )
    try:
        api.wait_for_http(f"http://127.0.0.1:{port}/health")
        token = re.search(r"hps_[\w-]+", api.log_tail(lines=10_000))
        assert token, api.describe()
        yield Server(f"http://127.0.0.1:{port}", token.group(0))
    finally:
        api.stop()


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def hpsearch(server: Server, tmp_path: Path) -> Run:
    """Run `hpsearch ARGS`; pointed at the server through HPSEARCH_URL/TOKEN unless
    `connect=False`, with its own empty config folder."""

    def run(*args: str, connect: bool = True) -> subprocess.CompletedProcess[str]:
        env = _environment() | {"XDG_CONFIG_HOME": str(tmp_path / "config")}
        if connect:
            env |= {"HPSEARCH_URL": server.url, "HPSEARCH_TOKEN": server.token}
        result = subprocess.run(
            [*HPSEARCH, *args],
            capture_output=True,
            text=True,
            timeout=WATCH_TIMEOUT_S,
            cwd=tmp_path,
            env=env,
        )
        assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
        return result

    return run


def _finish(client: Client, study_id: int) -> dict[str, Any]:
    """Wait for the study to end (through the client's own ETag polling); its last state."""
    return client.wait(study_id, interval_s=0.2)


@pytest.fixture(scope="module")
def finished_study(server: Server) -> dict[str, Any]:
    """The tiny study, run to its end on the server."""
    with server.client() as client:
        study = client.create_study(tiny_study(name="finished"))
        return _finish(client, study["id"])


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def _study_file(folder: Path, **overrides: object) -> Path:
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_study(**overrides)))
    return path


def test_submit_then_watch_exits_0_once_the_study_completes(
    hpsearch: Run, server: Server, tmp_path: Path
) -> None:
    submitted = hpsearch("submit", str(_study_file(tmp_path)))
    assert submitted.returncode == 0, _output(submitted)
    study_id = int(submitted.stdout.strip())

    watched = hpsearch("status", str(study_id), "--watch")

    assert watched.returncode == 0, _output(watched)
    assert f"study {study_id}" in watched.stdout
    assert "complete" in watched.stdout
    assert "4/4 finished" in watched.stdout
    with server.client() as client:
        study = client.get_study(study_id)
    assert study["status"] == "complete"
    assert study["trials_finished"] == 4


def test_submit_checks_the_file_here_and_names_the_field(hpsearch: Run, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = hpsearch("submit", str(_study_file(tmp_path, budget={"trials": -3})), "--url", dead)
    assert result.returncode == 2
    assert "budget.trials" in result.stdout
    assert "cannot reach" not in result.stdout  # refused before any request


class LoseFirstAnswer(httpx.BaseTransport):
    """The network, except that the first answer is lost after the server acted on it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.keys.append(request.headers.get("idempotency-key"))
        response = self.inner.handle_request(request)
        if len(self.keys) == 1:
            response.read()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response


def test_a_retry_after_a_lost_answer_sends_the_same_key_and_finds_the_same_study(
    server: Server,
) -> None:
    name = f"retried-{uuid.uuid4().hex[:8]}"
    network = LoseFirstAnswer()
    with server.client(network) as client:
        study = client.create_study(tiny_study(name=name), idempotency_key=new_idempotency_key())

    assert len(network.keys) == 2
    assert network.keys[0] is not None and network.keys[0] == network.keys[1]
    headers = {"Authorization": f"Bearer {server.token}"}
    listed = httpx.get(f"{server.url}/api/v1/studies", params={"name": name}, headers=headers)
    assert [s["id"] for s in listed.json()["data"]] == [study["id"]]
    # Each invocation has its own key: submitting the file again is a new study.
    assert new_idempotency_key() != new_idempotency_key()


def test_a_post_without_a_key_is_not_repeated_after_a_lost_answer() -> None:
    attempts: list[httpx.Request] = []

    def lose(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ReadError("connection reset", request=request)

    with Client("http://hpsearch.invalid", "hps_x", transport=httpx.MockTransport(lose)) as client:
        with pytest.raises(Unreachable, match="may or may not have been carried out"):
            client.publish_preset(1, 0, "p", "team")
    assert len(attempts) == 1  # publishing twice would make two versions


def _table_rows(text: str) -> list[tuple[int, str]]:
    """(number, state) of each row of the trials table."""
    return [(int(n), s) for n, s in re.findall(r"^│\s*(\d+)\s*│\s*(\w+)", text, re.MULTILINE)]


def test_trials_lists_every_trial_following_the_cursor(
    hpsearch: Run, server: Server, finished_study: dict[str, Any]
) -> None:
    study_id = finished_study["id"]
    with server.client() as client:
        one_by_one = [t["number"] for t in client.trials(study_id, page=1)]
    assert one_by_one == [0, 1, 2, 3]

    listed = hpsearch("trials", str(study_id))
    assert listed.returncode == 0, _output(listed)
    assert _table_rows(listed.stdout) == [(n, "complete") for n in range(4)]
    best = finished_study["best_trial"]
    assert f"training.learning_rate={best['params']['training.learning_rate']:.6g}" in listed.stdout

    limited = hpsearch("trials", str(study_id), "--limit", "2")
    assert [n for n, _ in _table_rows(limited.stdout)] == [0, 1]


def test_presets_publish_list_show_and_export_round_trip(
    hpsearch: Run, server: Server, finished_study: dict[str, Any], tmp_path: Path
) -> None:
    best = finished_study["best_trial"]
    published = hpsearch(
        "presets", "publish", str(finished_study["id"]), str(best["number"]), "round-trip"
    )
    assert published.returncode == 0, _output(published)
    assert published.stdout.strip() == "local/round-trip@1"

    assert "local/round-trip@1" in hpsearch("presets", "list").stdout
    shown = hpsearch("presets", "show", "local/round-trip@latest")
    assert shown.returncode == 0, _output(shown)
    assert "local/round-trip@1" in shown.stdout
    assert f"val_accuracy={best['values']['val_accuracy']:.6g}" in shown.stdout

    exported = tmp_path / "preset.yaml"
    result = hpsearch("presets", "export", "local/round-trip@1", "-o", str(exported))
    assert result.returncode == 0, _output(result)
    with server.client() as client:
        stored = client.preset("local/round-trip@1")
    study_file = yaml.safe_load(exported.read_text())
    config = {k: study_file[k] for k in ("dataset", "model", "training")}
    assert config == stored["config"]
    assert study_file["budget"] == {"trials": 1}
    assert study_file["objective"] == finished_study["objectives"]
    assert "# Preset local/round-trip@1" in exported.read_text()
    as_json = hpsearch("presets", "export", "local/round-trip@latest", "--format", "json")
    assert json.loads(as_json.stdout) == study_file

    # The exported file is a study file `hpsearch run` takes as is: one trial of the config,
    # reaching the preset's metrics again.
    ran = hpsearch(
        "run", str(exported), "--db", f"sqlite:///{tmp_path / 'here.db'}", "--workers", "1"
    )
    assert ran.returncode == 0, _output(ran)
    assert "finished: 1 complete" in ran.stdout
    assert f"{stored['values']['val_accuracy']:.6g}" in ran.stdout


def _compared(text: str, metric: str) -> float:
    """The value `train` found for `metric` (the table's third column)."""
    found = re.search(rf"^│\s*{metric}\s*│\s*[-+\d.e]+\s*│\s*([-+\d.e]+)\s*│", text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


def _publish_best(server: Server, study: dict[str, Any], name: str) -> dict[str, Any]:
    with server.client() as client:
        return client.publish_preset(study["id"], study["best_trial"]["number"], name, "team")


def test_train_preset_reproduces_the_stored_metrics(
    hpsearch: Run, server: Server, finished_study: dict[str, Any]
) -> None:
    preset = _publish_best(server, finished_study, "retrain")

    result = hpsearch("train", "--preset", "local/retrain@latest")

    assert result.returncode == 0, _output(result)
    stored = preset["values"]
    assert _compared(result.stdout, "val_accuracy") == pytest.approx(stored["val_accuracy"])
    assert _compared(result.stdout, "val_loss") == pytest.approx(stored["val_loss"], rel=1e-4)


def _points_csv(shift: float = 0.0) -> bytes:
    """Three separable classes in two columns, every value fixed."""
    rows = ["x1,x2,label"]
    for i in range(90):
        label = "abc"[i % 3]
        centre = {"a": 0.0, "b": 4.0, "c": 8.0}[label]
        rows.append(f"{centre + (i % 7) * 0.3 + shift},{(i % 5) * 0.4 - centre},{label}")
    return ("\n".join(rows) + "\n").encode()


def test_train_preset_on_an_upload_needs_that_same_file(
    hpsearch: Run, server: Server, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    uploaded = httpx.post(
        f"{server.url}/api/v1/datasets",
        files={"file": ("points.csv", _points_csv())},
        data={"target": "label"},
        headers=headers,
    )
    assert uploaded.status_code in (200, 201), uploaded.text
    dataset = {"name": str(uploaded.json()["id"]), "target": "label"}
    with server.client() as client:
        study = client.create_study(
            tiny_study(name="on-upload", dataset=dataset, budget={"trials": 1, "parallelism": 1})
        )
        study = _finish(client, study["id"])
    preset = _publish_best(server, study, "on-upload")
    (tmp_path / "points.csv").write_bytes(_points_csv())
    (tmp_path / "other.csv").write_bytes(_points_csv(shift=0.5))

    without = hpsearch("train", "--preset", "local/on-upload@1")
    assert without.returncode == 2
    assert f"uploaded dataset {dataset['name']}" in without.stdout
    assert "--data" in without.stdout

    other = hpsearch("train", "--preset", "local/on-upload@1", "--data", "other.csv")
    assert other.returncode == 2
    assert "not the data" in other.stdout

    same = hpsearch("train", "--preset", "local/on-upload@1", "--data", "points.csv")
    assert same.returncode == 0, _output(same)
    assert _compared(same.stdout, "val_loss") == pytest.approx(
        preset["values"]["val_loss"], rel=1e-4
    )


def test_watch_exits_non_zero_when_the_study_is_cancelled(
    hpsearch: Run, server: Server, tmp_path: Path
) -> None:
    slow = tiny_study(name="cancelled", budget={"trials": 500, "parallelism": 1})
    with server.client() as client:
        study = client.create_study(slow)
    cancelled = httpx.post(
        f"{server.url}/api/v1/studies/{study['id']}/cancel",
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert cancelled.status_code == 200, cancelled.text

    watched = hpsearch("status", str(study["id"]), "--watch")

    assert watched.returncode == 1, _output(watched)
    assert "cancelled" in watched.stdout


def test_a_bad_token_is_refused_in_one_red_line(hpsearch: Run) -> None:
    result = hpsearch("status", "1", "--token", "hps_not-a-real-token")
    assert result.returncode == 2
    assert "invalid, expired or revoked token" in result.stdout


def test_an_unknown_study_is_a_client_error(hpsearch: Run) -> None:
    result = hpsearch("status", "999999")
    assert result.returncode == 2
    assert "study not found" in result.stdout


def test_an_unreachable_server_is_named(hpsearch: Run) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = hpsearch("trials", "1", "--url", dead)
    assert result.returncode == 1
    assert f"cannot reach {dead}" in result.stdout


def test_login_checks_the_token_and_saves_a_private_config_later_commands_use(
    hpsearch: Run, server: Server, tmp_path: Path, finished_study: dict[str, Any]
) -> None:
    saved = tmp_path / "config" / "hpsearch" / "client.json"
    refused = hpsearch("login", "--url", server.url, "--token", "hps_wrong", connect=False)
    assert refused.returncode == 2
    assert not saved.exists()

    result = hpsearch("login", "--url", server.url, "--token", server.token, connect=False)

    assert result.returncode == 0, _output(result)
    assert "admin" in result.stdout
    assert saved.stat().st_mode & 0o777 == 0o600
    assert json.loads(saved.read_text()) == {"url": server.url, "token": server.token}
    status = hpsearch("status", str(finished_study["id"]), connect=False)
    assert status.returncode == 0, _output(status)
    assert "4/4 finished" in status.stdout


def _flaky_server(answers: list[dict[str, Any] | None]) -> Client:
    """A client whose server gives these answers in turn; None: the connection is refused."""
    pending = iter(answers)

    def serve(request: httpx.Request) -> httpx.Response:
        answer = next(pending)
        if answer is None:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=answer)

    return Client("http://hpsearch.invalid", "hps_x", transport=httpx.MockTransport(serve))


def test_watch_waits_out_a_server_that_went_away_after_answering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)
    running, done = {"status": "running"}, {"status": "complete"}
    # Once answered, more refusals than the client's own retries: a restart, not a blip.
    with _flaky_server([running, *[None] * 8, done]) as client:
        assert client.wait(1)["status"] == "complete"


def test_watch_of_a_server_that_never_answered_fails_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)
    with _flaky_server([None] * 4) as client, pytest.raises(Unreachable):
        client.wait(1)


def test_trials_as_csv_and_json_are_the_same_rows(
    hpsearch: Run, finished_study: dict[str, Any]
) -> None:
    study_id = str(finished_study["id"])
    as_csv = hpsearch("trials", study_id, "--format", "csv")
    as_json = hpsearch("trials", study_id, "--format", "json")
    assert as_csv.returncode == 0 and as_json.returncode == 0, _output(as_csv) + _output(as_json)

    rows = json.loads(as_json.stdout)
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [int(r["number"]) for r in parsed] == [r["number"] for r in rows] == [0, 1, 2, 3]
    for row, cells in zip(rows, parsed, strict=True):
        assert cells["state"] == row["state"] == "complete"
        assert float(cells["value"]) == row["value"] == row["values.val_accuracy"]
        lr = "params.training.learning_rate"
        assert float(cells[lr]) == row[lr]
    best = finished_study["best_trial"]
    assert rows[best["number"]]["value"] == best["value"]


def test_studies_list_cancel_resume_delete(hpsearch: Run, server: Server) -> None:
    name = f"managed-{uuid.uuid4().hex[:8]}"
    # Long enough trials that it is still running when the commands below reach it.
    training = {"optimizer": "adam", "learning_rate": 0.05, "epochs": 300, "batch_size": 32}
    slow = tiny_study(name=name, training=training, budget={"trials": 500})
    with server.client() as client:
        study_id = str(client.create_study(slow)["id"])

    cancelled = hpsearch("studies", "cancel", study_id)
    assert cancelled.returncode == 0, _output(cancelled)
    assert "cancelled" in cancelled.stdout
    listed = hpsearch("studies", "list", "--name", name)
    assert listed.returncode == 0, _output(listed)
    assert re.search(rf"│\s*{study_id}\s*│\s*{name}\s*│\s*local\s*│\s*cancelled", listed.stdout)
    again = hpsearch("studies", "cancel", study_id)
    assert again.returncode == 2 and "not running" in again.stdout

    resumed = hpsearch("studies", "resume", study_id)
    assert resumed.returncode == 0, _output(resumed)
    assert "running" in resumed.stdout
    assert hpsearch("studies", "cancel", study_id).returncode == 0

    deleted = hpsearch("studies", "delete", study_id, "--yes")
    assert deleted.returncode == 0, _output(deleted)
    assert name not in hpsearch("studies", "list").stdout
    gone = hpsearch("status", study_id)
    assert gone.returncode == 2 and "not found" in gone.stdout.lower()


def test_datasets_upload_list_delete(hpsearch: Run, tmp_path: Path) -> None:
    (tmp_path / "managed.csv").write_bytes(_points_csv(shift=0.75))

    uploaded = hpsearch("datasets", "upload", "managed.csv", "--target", "label")
    assert uploaded.returncode == 0, _output(uploaded)
    assert uploaded.stdout.strip() == "managed@1"
    (tmp_path / "managed.csv").write_bytes(_points_csv(shift=0.5))
    again = hpsearch("datasets", "upload", "managed.csv", "--target", "label", "--name", "managed")
    assert again.stdout.strip() == "managed@2", _output(again)

    listed = hpsearch("datasets", "list")
    found = re.search(r"│\s*(\d+)\s*│\s*managed@1", listed.stdout)
    assert found and "managed@2" in listed.stdout, listed.stdout
    dataset_id = found[1]

    refused = hpsearch("datasets", "upload", "managed.csv", "--target", "nope")
    assert refused.returncode == 2 and "target" in refused.stdout

    deleted = hpsearch("datasets", "delete", dataset_id, "--yes")
    assert deleted.returncode == 0, _output(deleted)
    assert not re.search(rf"│\s*{dataset_id}\s*│", hpsearch("datasets", "list").stdout)


def test_a_complete_trials_model_downloads_and_reloads_to_its_reported_metrics(
    hpsearch: Run, server: Server, finished_study: dict[str, Any], tmp_path: Path
) -> None:
    with server.client() as client:
        trials = client.trials(finished_study["id"])
        complete = next(t for t in trials if t["state"] == "complete")
        expected = client.weights(finished_study["id"], complete["number"])
    downloaded = hpsearch(
        "trials", str(finished_study["id"]), "--weights", str(complete["number"]), "-o", "m.npz"
    )
    assert downloaded.returncode == 0, _output(downloaded)
    content = (tmp_path / "m.npz").read_bytes()
    assert content == expected
    measured = evaluate_weights(content)
    for name in ("val_loss", "val_accuracy", "test_loss", "test_accuracy"):
        assert measured[name] == complete["values"][name], name


def test_a_trial_without_kept_weights_is_a_404_naming_them(hpsearch: Run, server: Server) -> None:
    with server.client() as client:
        study = client.create_study(
            tiny_study(name="no-weights", checkpoints={"keep_weights": False})
        )
        _finish(client, study["id"])
    missing = hpsearch("trials", str(study["id"]), "--weights", "0")
    assert missing.returncode != 0
    assert "trial weights not found" in _output(missing)


def test_a_preset_carries_its_trials_model_and_train_measures_it_exactly(
    hpsearch: Run, server: Server, finished_study: dict[str, Any]
) -> None:
    preset = _publish_best(server, finished_study, "with-weights")
    with server.client() as client:
        carried = client.preset_weights(preset["ref"])
        trained = client.weights(finished_study["id"], finished_study["best_trial"]["number"])
    assert carried == trained and preset["weights_bytes"] == len(carried)

    result = hpsearch("train", "--preset", preset["ref"], "--from-weights")
    assert result.returncode == 0, _output(result)
    for metric in ("val_accuracy", "val_loss", "test_accuracy", "test_loss"):
        # The difference column prints +0 only for exactly equal values (else e.g. +1e-17).
        row = re.search(rf"^│\s*{metric}\s*│.*│\s*(\S+)\s*│$", result.stdout, re.MULTILINE)
        assert row is not None and row.group(1) == "+0", result.stdout
