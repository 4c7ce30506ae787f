"""Every listing of the command line against a real `hpsearch serve`: a table whose numbers stay
whole at 80 columns, the same rows as JSON or CSV (`--format`), and a sentence for an empty list."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import hpsearch as local_hpsearch
from tests.test_cli_client import (
    HPSEARCH,
    WATCH_TIMEOUT_S,
    Server,
    _environment,
    _finish,
    server,  # noqa: F401 (a fixture: this module's own server)
)


def run(api: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """`hpsearch ARGS` against `api`, in a terminal of 80 columns."""
    env = _environment() | {"HPSEARCH_URL": api.url, "HPSEARCH_TOKEN": api.token}
    done = subprocess.run(
        [*HPSEARCH, *args],
        capture_output=True,
        text=True,
        timeout=WATCH_TIMEOUT_S,
        env=env | {"COLUMNS": "80"},
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def finished(server: Server) -> dict[str, Any]:  # noqa: F811
    """A study with long parameter names, numbers of many digits and long reasons (trials that
    diverged), run to its end."""
    study = {
        "name": "many-digits",
        "dataset": {"name": "cubic"},
        "model": {"type": "linear"},
        "training": {"loss": "mse", "optimizer": "sgd", "epochs": 5, "batch_size": 16},
        "space": {
            "training.learning_rate": {
                "type": "float",
                "low": 0.001234567,
                "high": 100.0,
                "log": True,
            },
            "training.weight_decay": {"type": "float", "low": 1e-6, "high": 1e-3, "log": True},
        },
        "strategy": {"type": "random", "seed": 1},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "budget": {"trials": 6, "parallelism": 2},
    }
    with server.client() as client:
        return _finish(client, client.create_study(study)["id"])


def test_an_empty_list_says_so_and_is_empty_as_json_or_csv(server: Server) -> None:  # noqa: F811
    nobody = f"none-{uuid.uuid4().hex[:8]}"
    assert run(server, "studies", "list", "--name", nobody).stdout.strip() == "no studies"
    assert run(server, "datasets", "list").stdout.strip() == "no datasets"
    assert run(server, "presets", "list").stdout.strip() == "no presets"
    for listing in (["studies", "list", "--name", nobody], ["datasets", "list"]):
        assert json.loads(run(server, *listing, "--format", "json").stdout) == []
        assert run(server, *listing, "--format", "csv").stdout.strip() == ""


def test_numbers_stay_whole_at_80_columns(server: Server, finished: dict[str, Any]) -> None:  # noqa: F811
    study_id = str(finished["id"])
    trials = json.loads(run(server, "trials", study_id, "--format", "json").stdout)
    shown = run(server, "trials", study_id).stdout
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert {t["state"] for t in trials} == {"complete", "failed"}  # some diverged
    for trial in trials:
        value = "" if trial["value"] is None else f"{trial['value']:.6g}"
        # The value column holds the value whole, to 6 significant digits.
        row = rf"│\s*{trial['number']}\s*│\s*{trial['state']}\s*│[^│]*│\s*{value}\s*│"
        assert re.search(row, shown), (row, shown)
        for name in ("training.learning_rate", "training.weight_decay"):
            assert f"{name}={trial['params.' + name]:.6g}" in shown, (name, shown)
    listed = run(server, "studies", "list", "--name", "many-digits").stdout
    assert re.search(rf"│\s*{study_id}\s*│.*│\s*{finished['best_trial']['value']:.6g}\s*│", listed)


def test_every_listing_prints_the_same_rows_as_json_and_csv(
    server: Server,  # noqa: F811
    finished: dict[str, Any],
) -> None:
    as_json = json.loads(run(server, "studies", "list", "--format", "json").stdout)
    as_csv = run(server, "studies", "list", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert [row["id"] for row in as_json] == [int(row["id"]) for row in rows]
    (ours,) = [row for row in rows if int(row["id"]) == finished["id"]]
    assert float(ours["best_value"]) == finished["best_trial"]["value"]  # full precision
    assert ours["name"] == "many-digits" and ours["status"] == "complete"


def test_the_operators_token_listing_takes_a_format_too(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hpsearch.db'}"
    assert local_hpsearch("admin", "create-user", "carol", "--db", db).returncode == 0
    empty = local_hpsearch("admin", "list-tokens", "carol", "--db", db)
    assert empty.returncode == 0 and "carol has no tokens" in empty.stdout
    assert local_hpsearch("admin", "create-token", "carol", "--db", db).returncode == 0
    listed = local_hpsearch("admin", "list-tokens", "carol", "--format", "json", "--db", db)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    (token,) = json.loads(listed.stdout)
    assert token["state"] == "active" and token["name"] == "cli" and token["expires"] == ""
