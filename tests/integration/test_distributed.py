"""The whole distributed path on real servers: uvicorn + Redis + two Celery workers + PostgreSQL."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.conftest import ROOT
from tests.servers import ManagedProcess, RedisServer, free_port

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")
TERMINAL = {"complete", "pruned", "failed"}
STUDY_TIMEOUT_S = 240


class Stack:
    """An API and two workers on one PostgreSQL database and one Redis."""

    def __init__(self, database_url: str, broker_url: str, logs: Path, workers: int = 2) -> None:
        env = {"HPSEARCH_DATABASE_URL": database_url, "HPSEARCH_BROKER_URL": broker_url}
        self.database_url = database_url
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.api = ManagedProcess(
            [HPSEARCH, "serve", "--host", "127.0.0.1", "--port", str(port)],
            log_dir=logs,
            name="api",
            env=env,
        )
        self.workers = [
            ManagedProcess(
                [HPSEARCH, "worker", "--concurrency", "1", "--name", f"w{i}@%h"],
                log_dir=logs,
                name=f"worker{i}",
                env=env,
            )
            for i in range(1, workers + 1)
        ]
        self.api.wait_for_http(f"{self.base}/health")
        # The server's first start printed the local admin's token.
        self.token = re.search(r"hps_[\w-]+", self.api.log_path.read_text()).group(0)  # type: ignore[union-attr]
        for worker in self.workers:
            worker.wait_for_log("ready.")

    def run_study(self, definition: dict) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base, timeout=10, headers=headers) as client:
            created = client.post("/api/v1/studies", json=definition)
            assert created.status_code == 201, created.text
            study_id = created.json()["id"]
            deadline = time.monotonic() + STUDY_TIMEOUT_S
            while time.monotonic() < deadline:
                study = client.get(f"/api/v1/studies/{study_id}").json()
                if study["status"] != "running":
                    return study
                time.sleep(0.3)
        pytest.fail(f"study {study_id} still running after {STUDY_TIMEOUT_S}s:\n{self.describe()}")

    def trials_run_per_worker_log(self) -> Counter[int]:
        started: Counter[int] = Counter()
        for worker in self.workers:
            for match in re.finditer(r"trial (\d+): running", worker.log_path.read_text()):
                started[int(match.group(1))] += 1
        return started

    def describe(self) -> str:
        return "\n\n".join(p.describe() for p in [self.api, *self.workers])

    def stop(self) -> None:
        for process in [*self.workers, self.api]:
            process.stop()


@pytest.fixture
def stack(
    request: pytest.FixtureRequest,
    fresh_database_url: str,
    redis_server: RedisServer,
    logs_dir: Path,
) -> Iterator[Stack]:
    """An API and workers (2, or `@pytest.mark.parametrize("stack", [N], indirect=True)`)."""
    redis_server.client().flushall()  # no message of an earlier test's database may linger
    running = Stack(fresh_database_url, redis_server.url, logs_dir, getattr(request, "param", 2))
    try:
        yield running
    finally:
        running.stop()


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
        [HPSEARCH, "run", str(study_file), "--db", sqlite_url],
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
