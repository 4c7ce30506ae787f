"""A trainer plugin that takes its process down, on the real stack: the trial goes through the
lost-trial path like any worker death, and the worker lives on."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT
from tests.integration.stack import stack_on
from tests.servers import RedisServer
from tests.trainers.conftest import install_test_trainers

# Short heartbeats so that a lost trial is found in seconds: the path, not its timing, is tested.
FAST_LOSS = {
    "HPSEARCH_HEARTBEAT_S": "0.5",
    "HPSEARCH_LOST_AFTER_S": "3",
    "HPSEARCH_SWEEP_EVERY_S": "0.5",
}


def test_a_trainer_that_kills_its_process_is_a_lost_trial_retried_then_failed(
    fresh_database_url: str, redis_server: RedisServer, logs_dir: Path, tmp_path: Path
) -> None:
    site = install_test_trainers(tmp_path / "site")
    env = {**FAST_LOSS, "PYTHONPATH": f"{ROOT}:{site}"}
    with stack_on(fresh_database_url, redis_server, logs_dir, workers=1, env=env) as stack:
        study_id = stack.submit(
            {
                "name": "crash",
                "trainer": "crashes",
                "config": {"x": 0.5},
                "objective": {"metric": "loss", "direction": "minimize"},
                "budget": {"trials": 1, "max_retries": 1},
            }
        )
        assert stack.wait_for_end(study_id) == "complete", stack.describe()
        rows = stack.sql(
            "SELECT state, reason, attempt, retry_of IS NOT NULL FROM trials"
            " WHERE study_id = :s ORDER BY id",
            s=study_id,
        )
        # The config ran twice (once more for max_retries), each run lost, and the budget of
        # one trial holds: the retry took the first run's place.
        assert rows == [("failed", "lost", 1, False), ("failed", "lost", 2, True)], rows
        assert stack.workers[0].is_running(), stack.describe()
