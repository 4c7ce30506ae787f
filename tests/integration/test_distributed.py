"""The whole distributed path on real servers: uvicorn + Redis + two Celery workers + PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.conftest import ROOT
from tests.integration.stack import HPSEARCH, STUDY_TIMEOUT_S, TERMINAL, Stack, stack_on
from tests.servers import RedisServer


@pytest.fixture
def stack(
    request: pytest.FixtureRequest,
    fresh_database_url: str,
    redis_server: RedisServer,
    logs_dir: Path,
) -> Iterator[Stack]:
    """An API and workers (2, or `@pytest.mark.parametrize("stack", [N], indirect=True)`)."""
    workers = getattr(request, "param", 2)
    with stack_on(fresh_database_url, redis_server, logs_dir, workers=workers) as running:
        yield running


def quickstart() -> dict:
    return yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())


def test_quickstart_runs_to_its_budget_over_http_with_two_workers(stack: Stack) -> None:
    definition = quickstart()
    budget = definition["budget"]["trials"]
    study = stack.run_study(definition)
    assert study["status"] == "complete", stack.describe()
    assert study["trials_finished"] == budget
    assert study["best_trial"] is not None

    engine = create_engine(stack.database_url)
    with engine.connect() as db:
        states = db.execute(text("SELECT id, state, reason, worker FROM trials")).all()
        curves = dict(
            db.execute(
                text(
                    "SELECT trial_id, array_agg(step ORDER BY step) FROM trial_metrics "
                    "GROUP BY trial_id"
                )
            ).all()
        )
    engine.dispose()

    assert len(states) == budget, "the study queued more trials than its budget"
    assert {s for _, s, _, _ in states} <= TERMINAL
    assert all(reason for _, state, reason, _ in states if state == "failed")
    for trial_id, *_ in states:
        steps = curves.get(trial_id, [])
        assert steps and steps == list(range(1, len(steps) + 1)), f"trial {trial_id}: {steps}"
    # Both workers took trials, and each trial was started exactly once across them.
    assert len({worker for *_, worker in states}) >= 2
    started = stack.trials_run_per_worker_log()
    assert sorted(started) == sorted(trial_id for trial_id, *_ in states)
    assert set(started.values()) == {1}


def test_embedded_and_distributed_agree_with_parallelism_one(stack: Stack, tmp_path: Path) -> None:
    definition = quickstart()
    definition["budget"] = {"trials": 6, "parallelism": 1}
    distributed = stack.run_study(definition)["best_trial"]

    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(definition, sort_keys=False))
    sqlite_url = f"sqlite:///{tmp_path / 'embedded.db'}"
    subprocess.run(
        [*HPSEARCH, "run", str(study_file), "--db", sqlite_url],
        check=True,
        capture_output=True,
        timeout=STUDY_TIMEOUT_S,
    )
    engine = create_engine(sqlite_url)
    with engine.connect() as db:
        number, params, values = db.execute(
            text(
                "SELECT number, params, \"values\" FROM trials WHERE state = 'complete' "
                "ORDER BY value DESC, number LIMIT 1"
            )
        ).one()
    engine.dispose()
    embedded_values = yaml.safe_load(values)  # JSON is YAML

    assert distributed["number"] == number
    assert distributed["params"] == yaml.safe_load(params)
    timing = {"train_seconds", "epoch_seconds"}
    assert {k: v for k, v in distributed["values"].items() if k not in timing} == {
        k: v for k, v in embedded_values.items() if k not in timing
    }


@pytest.mark.parametrize("stack", [4], indirect=True)
def test_a_grid_runs_every_point_exactly_once_with_four_workers(stack: Stack) -> None:
    definition = quickstart()
    definition["training"]["epochs"] = 2
    definition["space"] = {
        "training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
        "training.optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
        "model.hidden": {"type": "categorical", "choices": [[8], [16]]},
    }
    definition["strategy"] = {"type": "grid", "n": 4}
    definition["budget"] = {"trials": 100, "parallelism": 4}  # more than the 16 points
    study = stack.run_study(definition)
    assert study["status"] == "complete"

    engine = create_engine(stack.database_url)
    with engine.connect() as db:
        rows = db.execute(text("SELECT grid_index, params, state, worker FROM trials")).all()
    engine.dispose()
    assert sorted(index for index, *_ in rows) == list(range(16))
    configs = {json.dumps(params, sort_keys=True) for _, params, *_ in rows}
    assert len(configs) == 16
    assert {state for _, _, state, _ in rows} <= TERMINAL
    assert len({worker for *_, worker in rows}) >= 2, "the grid was not shared out"
    assert set(stack.trials_run_per_worker_log().values()) == {1}


def test_a_coarse_to_fine_study_trains_each_round_its_epochs_across_workers(
    stack: Stack,
) -> None:
    """Round 0 trains a quarter of the epochs, round 1 half, round 2 all: each trial's curve
    has as many epochs as its params say, whichever worker ran it. The rounds' trials are 12
    split 1.5^2 : 1.5 : 1 (round_ratio 1.5): 5.7, 3.8 and the rest, so 6, 4 and 2."""
    definition = quickstart()
    definition["training"]["epochs"] = 8
    definition["training"]["stopping"] = {"patience": None}
    definition["strategy"] = {"type": "coarse_to_fine", "seed": 3, "rounds": 3}
    definition["budget"] = {"trials": 12, "parallelism": 2}
    study = stack.run_study(definition)
    assert study["status"] == "complete", stack.describe()
    rounds = study["strategy_state"]["rounds"]
    assert [r["epochs"] for r in rounds] == [2, 4, 8]
    assert [r["trials"] for r in rounds] == [6, 4, 2]
    assert all(set(r["arms"]) <= {"sgd", "adam"} for r in rounds)
    assert study["strategy_state"]["result"]["winner"] in {"sgd", "adam"}

    rows = stack.sql(
        "SELECT t.number, t.params, t.state, max(m.step) FROM trials t"
        " LEFT JOIN trial_metrics m ON m.trial_id = t.id GROUP BY t.id ORDER BY t.number"
    )
    epochs = [params.get("training.epochs", 8) for _, params, _, _ in rows]
    assert epochs == [2] * 6 + [4] * 4 + [8] * 2
    for (number, _, state, steps), trained in zip(rows, epochs, strict=True):
        if state == "complete":
            assert steps == trained, f"trial {number} trained {steps} epochs, not {trained}"
    assert len({json.dumps(params, sort_keys=True) for _, params, _, _ in rows}) == len(rows)
