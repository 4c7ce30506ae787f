"""Faults on real servers: a trial process SIGKILLed, Redis, PostgreSQL and the API restarted, a
study cancelled mid-flight. After each, the database must tell a whole story: the study ended as
expected with its budget of finished trials, every trial in one terminal state, nothing run twice.

The workers sweep every second and call a trial lost after a few seconds without a heartbeat,
so a fault costs seconds, not the production half-minute.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpsearch.search.definition import StudyDefinition
from hpsearch.worker.blas import BLAS_THREAD_VARIABLES
from hpsearch.worker.engine import TrainConfig
from tests.conftest import ROOT, tiny_study
from tests.integration.stack import (
    HPSEARCH,
    STUDY_TIMEOUT_S,
    Stack,
    TrialRow,
    assert_study_ended_whole,
    stack_on,
    trials_of,
)
from tests.servers import ManagedProcess, PostgresServer, RedisServer

# Short enough that a lost trial is retried within seconds, long enough that a trial process
# slowed down by a loaded machine still heartbeats in time.
FAST_SWEEPS = {
    "HPSEARCH_HEARTBEAT_S": "0.5",
    "HPSEARCH_LOST_AFTER_S": "5",
    "HPSEARCH_SWEEP_EVERY_S": "1",
    "HPSEARCH_REQUEUE_AFTER_S": "6",
}
GRID_POINTS = 6
# How long a restarted server stays away: longer than the clients' quick retries.
DOWN_S = 4.0


@pytest.fixture
def stack(
    request: pytest.FixtureRequest,
    fresh_database_url: str,
    redis_server: RedisServer,
    logs_dir: Path,
) -> Iterator[Stack]:
    """An API and two workers that sweep fast, on a fresh database and an empty Redis; other
    settings with `@pytest.mark.parametrize("stack", [{...}], indirect=True)`."""
    env = FAST_SWEEPS | getattr(request, "param", {})
    with stack_on(fresh_database_url, redis_server, logs_dir, env=env) as running:
        yield running


def grid_study(epochs: int = 300) -> dict:
    """Six grid points, two at a time; each trial trains for a few seconds."""
    return {
        "name": "faults-grid",
        "dataset": {"name": "digits"},
        "model": {"type": "mlp", "hidden": [32]},
        "training": {"optimizer": "adam", "learning_rate": 0.01, "epochs": epochs, "batch_size": 8},
        "space": {
            "training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
            "training.optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
        },
        "strategy": {"type": "grid", "n": 3},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "budget": {"trials": GRID_POINTS, "parallelism": 2},
    }


def wait_for_running(stack: Stack, study_id: int, count: int = 1, steps: int = 2) -> list[TrialRow]:
    """`count` trials of the study running, each with `steps` epochs written: mid-trial."""
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while time.monotonic() < deadline:
        status = stack.sql("SELECT status FROM studies WHERE id = :id", id=study_id)[0][0]
        assert status == "running", f"study {study_id} ended before the fault: {status}"
        running = [
            t for t in trials_of(stack, study_id) if t.state == "running" and t.steps >= steps
        ]
        if len(running) >= count:
            return running
        time.sleep(0.1)
    pytest.fail(f"study {study_id}: not {count} trials running:\n{stack.describe()}")


def wait_for_finished(stack: Stack, study_id: int, count: int) -> None:
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    query = (
        "SELECT count(*) FROM trials WHERE study_id = :id"
        " AND state IN ('complete', 'pruned', 'failed')"
    )
    while stack.sql(query, id=study_id)[0][0] < count:
        assert time.monotonic() < deadline, f"not {count} trials finished:\n{stack.describe()}"
        time.sleep(0.05)


def no_errors(trials: list[TrialRow]) -> None:
    errors = [t for t in trials if t.reason and t.reason.startswith("error")]
    assert not errors, f"trials failed with an error: {errors}"


def test_a_trial_process_killed_mid_trial_is_lost_and_its_retry_resumes_its_checkpoint(
    stack: Stack,
) -> None:
    # The budget is the grid: the lost trial's retry takes its place, so every point completes.
    definition = grid_study() | {"checkpoints": {"every_epochs": 10}}
    study_id = stack.submit(definition)
    victim = wait_for_running(stack, study_id)[0]
    saved_at = wait_for_checkpoint(stack, victim.id)
    pid = int(victim.worker.rsplit(":", 1)[1])  # type: ignore[union-attr]
    # Only ever a process of ours: a Celery pool child of one of our workers.
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent in {w.pid for w in stack.workers}, f"pid {pid} is not our pool's"
    os.kill(pid, signal.SIGKILL)

    trials = assert_study_ended_whole(stack, study_id, status="complete", finished=GRID_POINTS)
    by_id = {t.id: t for t in trials}
    assert (by_id[victim.id].state, by_id[victim.id].reason) == ("failed", "lost")
    retries = [t for t in trials if t.retry_of == victim.id]
    assert [t.state for t in retries] == ["complete"], trials
    complete = [json.dumps(t.params, sort_keys=True) for t in trials if t.state == "complete"]
    assert len(set(complete)) == len(complete) == GRID_POINTS, "each point complete once"
    no_errors(trials)
    # Celery redelivered the killed child's message; the runner refused to run it twice.
    assert set(stack.trials_run_per_worker_log().values()) == {1}
    assert all(w.is_running() for w in stack.workers), stack.describe()

    # The retry resumed where the victim's last checkpoint left off, not from epoch 1 ...
    retry = retries[0]
    logs = "".join(w.log_path.read_text() for w in stack.started)  # type: ignore[union-attr]
    resumed = re.search(rf"trial {retry.id}: resumes trial {victim.id} after step (\d+)", logs)
    assert resumed is not None, "the retry did not resume"
    assert int(resumed.group(1)) >= saved_at and int(resumed.group(1)) % 10 == 0
    # ... its curve has every epoch once, and is the curve of the run that never stopped.
    curve = curve_of(stack, retry.id)
    epochs = definition["training"]["epochs"]
    assert [step for step, _ in curve] == list(range(1, epochs + 1))
    config = StudyDefinition.model_validate(definition).trial_config(retry.params)
    assert [without_timings(metrics) for _, metrics in curve] == uninterrupted_curve(config)
    assert not stack.sql("SELECT trial_id FROM checkpoints"), "ended trials keep no checkpoint"


def test_a_pbt_study_survives_a_trial_process_killed_mid_generation(stack: Stack) -> None:
    # Two members, three generations of a few seconds each; generation 1 loses a trial.
    population, interval, epochs = 2, 100, 300
    definition = grid_study(epochs) | {
        "name": "faults-pbt",
        "space": {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}},
        "strategy": {"type": "pbt", "seed": 1, "population": population, "interval": interval},
        "budget": {"trials": population * epochs // interval, "parallelism": population},
        "checkpoints": {"every_epochs": 10},
    }
    study_id = stack.submit(definition)
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while True:  # a generation-1 trial running, some epochs into its interval
        running = [
            t
            for t in trials_of(stack, study_id)
            if t.state == "running" and t.number >= population and t.steps >= 2
        ]
        if running:
            break
        assert time.monotonic() < deadline, stack.describe()
        time.sleep(0.1)
    victim = running[0]
    os.kill(int(victim.worker.rsplit(":", 1)[1]), signal.SIGKILL)  # type: ignore[union-attr]

    trials = assert_study_ended_whole(
        stack, study_id, status="complete", finished=population * epochs // interval
    )
    lineages = {t.number: t for t in trials}
    rows = stack.sql("SELECT number, lineage FROM trials WHERE study_id = :id", id=study_id)
    lineage = {n: (v if isinstance(v, dict) else json.loads(v)) for n, v in rows}
    (retry,) = [t for t in trials if t.retry_of == victim.id]
    assert retry.state == "complete" and lineage[retry.number] == lineage[victim.number]
    # Every generation has each member once, complete, from a parent of the generation before.
    complete = [t for t in trials if t.state == "complete"]
    for generation in range(epochs // interval):
        members = sorted(
            lineage[t.number]["member"]
            for t in complete
            if lineage[t.number]["generation"] == generation
        )
        assert members == list(range(population)), (generation, members)
    for t in complete:
        parent = lineage[t.number]["parent"]
        if parent is not None:
            assert lineage[parent]["generation"] == lineage[t.number]["generation"] - 1
            assert lineages[parent].state in ("complete", "failed")
    no_errors(trials)
    # The retry started from a saved state (its own lost run's, or its parent's), not afresh.
    logs = "".join(w.log_path.read_text() for w in stack.started)  # type: ignore[union-attr]
    assert re.search(rf"trial {retry.id}: resumes trial \d+ after step \d+", logs), logs[-2000:]


def wait_for_checkpoint(stack: Stack, trial_id: int) -> int:
    """The step of the trial's first stored checkpoint, once there is one."""
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while time.monotonic() < deadline:
        saved = stack.sql("SELECT step FROM checkpoints WHERE trial_id = :id", id=trial_id)
        if saved:
            return saved[0][0]
        time.sleep(0.05)
    pytest.fail(f"trial {trial_id} saved no checkpoint:\n{stack.describe()}")


def curve_of(stack: Stack, trial_id: int) -> list[tuple[int, dict]]:
    rows = stack.sql(
        "SELECT step, metrics FROM trial_metrics WHERE trial_id = :id ORDER BY step", id=trial_id
    )
    return [
        (step, metrics if isinstance(metrics, dict) else json.loads(metrics))
        for step, metrics in rows
    ]


def uninterrupted_curve(config: TrainConfig) -> list[dict]:
    """The config's per-epoch metrics trained whole, in a process pinned to one BLAS thread
    as the workers are: more threads may sum in another order."""
    script = (
        "import json, sys; from hpsearch.worker.engine import TrainConfig, train; "
        "config = TrainConfig.model_validate_json(sys.stdin.read()); "
        "print(json.dumps(train(config).history))"
    )
    env = os.environ | dict.fromkeys(BLAS_THREAD_VARIABLES, "1")
    done = subprocess.run(
        [sys.executable, "-c", script], input=config.model_dump_json(), env=env,
        capture_output=True, text=True, check=True, timeout=STUDY_TIMEOUT_S,
    )  # fmt: skip
    return [without_timings(metrics) for metrics in json.loads(done.stdout)]


def without_timings(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "epoch_seconds"}


# Queued trials are not dispatched again for the study's whole remaining run: the workers
# themselves must get the next trials onto the broker once it is back.
@pytest.mark.parametrize("stack", [{"HPSEARCH_REQUEUE_AFTER_S": "3600"}], indirect=True)
def test_a_study_survives_a_redis_restart(stack: Stack, redis_server: RedisServer) -> None:
    study_id = stack.submit(grid_study())
    wait_for_running(stack, study_id)
    # In-memory: every queued and unacknowledged message is gone with it.
    redis_server.restart(down_s=DOWN_S)

    trials = assert_study_ended_whole(stack, study_id, status="complete", finished=GRID_POINTS)
    assert {(t.state, t.reason) for t in trials} == {("complete", None)}, trials
    assert all(w.is_running() for w in stack.workers), stack.describe()


def test_a_study_survives_a_postgres_restart(stack: Stack, postgres_server: PostgresServer) -> None:
    study_id = stack.submit(grid_study())
    # One trial mid-way is enough, and two at once may never be seen: the trials are short.
    wait_for_running(stack, study_id)
    # Every connection of the API and the workers is cut, for longer than a trial may go
    # without a heartbeat: the sweepers must not call the trials waiting it out lost.
    postgres_server.restart(down_s=float(FAST_SWEEPS["HPSEARCH_LOST_AFTER_S"]) + 2)

    trials = assert_study_ended_whole(stack, study_id, status="complete", finished=GRID_POINTS)
    # No worker died: the trials that ran through the outage waited it out and kept their work.
    assert {(t.state, t.reason) for t in trials} == {("complete", None)}, trials
    assert all(w.is_running() for w in stack.workers), stack.describe()
    # Sweeps, heartbeats and retried writes log the outage as it begins and ends, not a
    # stack trace each (about 1,500 lines a worker for these few seconds, before).
    for worker in stack.workers:
        assert "Traceback" not in worker.log_tail(100_000), worker.describe()
    with stack.client() as client:  # the API's pool recovered too
        assert client.get(f"/api/v1/studies/{study_id}").json()["status"] == "complete"


def test_status_watch_outlives_an_api_restart(stack: Stack, logs_dir: Path) -> None:
    study_id = stack.submit(grid_study())
    watch = ManagedProcess(
        [*HPSEARCH, "status", str(study_id), "--watch", "--url", stack.base],
        log_dir=logs_dir,
        name="watch",
        env={"HPSEARCH_TOKEN": stack.token, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
    )
    try:
        stack.api.wait_for_log(f"GET /api/v1/studies/{study_id} HTTP")  # the watch is on
        stack.stop_api()
        # The command says it lost the server and keeps trying, rather than failing.
        watch.wait_for_log("retrying", timeout=60)
        assert watch.is_running(), watch.describe()
        stack.start_api()
        code = watch.wait(timeout=STUDY_TIMEOUT_S)
    finally:
        watch.stop()
    assert code == 0, watch.describe()
    assert f"study {study_id}" in watch.log_tail() and "complete" in watch.log_tail()
    assert_study_ended_whole(stack, study_id, status="complete", finished=GRID_POINTS)


# This server allows trials far longer than the test (HPSEARCH_MAX_EPOCHS is 10,000 by default):
# only the cancel can end them.
@pytest.mark.parametrize("stack", [{"HPSEARCH_MAX_EPOCHS": "50000"}], indirect=True)
def test_cancel_stops_running_trials_at_their_next_report(stack: Stack) -> None:
    epochs = 50_000
    study_id = stack.submit(grid_study(epochs=epochs))
    running = wait_for_running(stack, study_id, count=2)
    with stack.client() as client:
        answer = client.post(f"/api/v1/studies/{study_id}/cancel")
    assert answer.status_code == 200, answer.text

    trials = assert_study_ended_whole(stack, study_id, status="cancelled")
    by_id = {t.id: t for t in trials}
    for trial in running:
        ended = by_id[trial.id]
        assert (ended.state, ended.reason) == ("failed", "cancelled"), ended
        assert ended.steps < epochs, "the trial trained on after the cancel"
    assert len(trials) == 2, "a trial was queued after the cancel"


# Enough for a dozen or more kills at one every 1.5-3.5 s, few enough for the CI.
SOAK_TRIALS = 200


def test_soak_a_worker_killed_every_few_seconds_loses_and_repeats_nothing(stack: Stack) -> None:
    definition = tiny_study(name="soak", budget={"trials": SOAK_TRIALS, "parallelism": 2})
    # Tiny (iris, a few hundredths of a second each), yet long enough that a study of them
    # outlasts a good number of kills.
    definition["training"].update(epochs=30, batch_size=4)
    study_id = stack.submit(definition)
    rng = random.Random(7)
    wait_for_finished(stack, study_id, SOAK_TRIALS // 10)  # the first kill lands mid-study
    kills = 0
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while time.monotonic() < deadline:
        if stack.sql("SELECT status FROM studies WHERE id = :id", id=study_id)[0][0] != "running":
            break
        # A machine dying: a worker that is up and its trial process at once, then a new one
        # in its place (which takes a few seconds to start).
        ready = [i for i, w in enumerate(stack.workers) if "ready." in w.log_tail(10_000)]
        if ready:
            victim = rng.choice(ready)
            stack.workers[victim].kill()
            stack.workers[victim] = stack.start_worker(wait=False)
            kills += 1
        time.sleep(rng.uniform(1.5, 3.5))

    trials = assert_study_ended_whole(stack, study_id, status="complete", finished=SOAK_TRIALS)
    assert kills >= 1, "the study ended before the faults began"
    no_errors(trials)
    # No trial ran twice: a lost one's config ran again as a new trial, never the trial itself.
    assert set(stack.trials_run_per_worker_log().values()) == {1}
    lost = sum(t.reason == "lost" for t in trials)
    print(f"\nsoak: {kills} workers killed, {lost} trials lost and run again")
