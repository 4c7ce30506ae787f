"""Trials go to the workers that have their trainer: one Celery queue per trainer, on real
Redis, PostgreSQL, uvicorn and two workers, one of which runs only the built-in engine."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from tests.conftest import tiny_study
from tests.integration.stack import HPSEARCH, Stack, stack_on
from tests.servers import ManagedProcess, RedisServer

RIDGE = {
    "name": "ridge",
    "trainer": "ridge",
    "config": {"data": {"n_samples": 200, "n_features": 5}, "steps": 30},
    "space": {"alpha": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}},
    "objective": {"metric": "val_rmse", "direction": "minimize"},
    "budget": {"trials": 6, "parallelism": 2},
}


def trials_run_by(worker: ManagedProcess) -> set[int]:
    """The trials a worker's trial process started, from its log."""
    return {int(n) for n in re.findall(r"trial (\d+): running", worker.log_tail(100_000))}


def trial_ids(stack: Stack, study_id: int) -> set[int]:
    return {row[0] for row in stack.sql("SELECT id FROM trials WHERE study_id = :s", s=study_id)}


def offered(stack: Stack, expected: dict[str, int]) -> dict[str, int]:
    """What GET /trainers lists, once it is `expected` (a worker announces just after it says
    it is ready) or after 15 s."""
    deadline = time.monotonic() + 15
    while True:
        with stack.client() as client:
            found = {t["name"]: t["workers"] for t in client.get("/api/v1/trainers").json()}
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_plugin_trials_reach_only_workers_with_the_plugin_and_engine_trials_reach_both(
    fresh_database_url: str, redis_server: RedisServer, logs_dir: Path
) -> None:
    with stack_on(fresh_database_url, redis_server, logs_dir, workers=0) as stack:
        engine_only = stack.start_worker(trainers="numpy")
        everything = stack.start_worker()
        expected = {"numpy": 2, "ridge": 1}
        assert offered(stack, expected) == expected

        ridge = stack.run_study(RIDGE)
        assert ridge["status"] == "complete" and ridge["trials_finished"] == 6, stack.describe()
        ridge_trials = trial_ids(stack, ridge["id"])
        assert ridge_trials <= trials_run_by(everything)
        assert not ridge_trials & trials_run_by(engine_only)

        # Slow enough (about a second a trial) that each worker takes some of them.
        engine = tiny_study(budget={"trials": 8, "parallelism": 2})
        engine["training"].update(epochs=60, batch_size=4)
        study = stack.run_study(engine)
        assert study["status"] == "complete", stack.describe()
        engine_trials = trial_ids(stack, study["id"])
        assert engine_trials & trials_run_by(engine_only)
        assert engine_trials & trials_run_by(everything)


def test_a_study_no_live_worker_can_run_says_it_waits_until_one_comes(
    fresh_database_url: str, redis_server: RedisServer, logs_dir: Path
) -> None:
    with stack_on(fresh_database_url, redis_server, logs_dir, workers=0) as stack:
        stack.start_worker().stop()  # offered ridge once (its schema is known), then left
        stack.start_worker(trainers="numpy")
        expected = {"numpy": 1, "ridge": 0}
        assert offered(stack, expected) == expected
        study_id = stack.submit(RIDGE)
        with stack.client() as client:
            shown = client.get(f"/api/v1/studies/{study_id}").json()
        assert shown["status"] == "running" and shown["trials_finished"] == 0
        assert shown["waiting"] == "no worker offers trainer 'ridge'"
        told = subprocess.run(
            [*HPSEARCH, "status", str(study_id)],
            env={**os.environ, "HPSEARCH_URL": stack.base, "HPSEARCH_TOKEN": stack.token},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "waiting: no worker offers trainer 'ridge'" in told.stdout, told.stdout + told.stderr
        time.sleep(2)  # nothing takes its trials meanwhile: they wait on the ridge queue
        queued = stack.sql("SELECT count(*) FROM trials WHERE state = 'queued'")[0][0]
        assert queued == 2

        stack.start_worker(trainers="ridge")
        assert stack.wait_for_end(study_id) == "complete", stack.describe()
        with stack.client() as client:
            assert client.get(f"/api/v1/studies/{study_id}").json()["waiting"] is None
