"""A failed trial's traceback on the real stack: migration 0005 both ways on PostgreSQL, and a
raising trainer's trial on a Celery worker keeping its traceback."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT
from tests.db.test_metrics import check_writing_a_trials_steps_again
from tests.db.test_migrations import check_the_traceback_migration
from tests.integration.stack import stack_on
from tests.servers import RedisServer
from tests.trainers.conftest import install_test_trainers
from tests.trainers.test_runner import plugin_study


def test_the_traceback_migration_runs_both_ways_and_keeps_the_trials(
    fresh_database_url: str,
) -> None:
    check_the_traceback_migration(fresh_database_url)


def test_writing_a_trials_steps_again_stores_each_step_once(fresh_database_url: str) -> None:
    check_writing_a_trials_steps_again(fresh_database_url)


def test_a_trainer_that_raises_on_a_celery_worker_keeps_its_traceback(
    fresh_database_url: str, redis_server: RedisServer, logs_dir: Path, tmp_path: Path
) -> None:
    site = install_test_trainers(tmp_path / "site")
    env = {"PYTHONPATH": f"{ROOT}:{site}"}
    with stack_on(fresh_database_url, redis_server, logs_dir, workers=1, env=env) as stack:
        study_id = stack.submit(plugin_study("raises"))
        assert stack.wait_for_end(study_id) == "complete", stack.describe()
        ((state, reason, kept),) = stack.sql(
            "SELECT state, reason, traceback FROM trials WHERE study_id = :s", s=study_id
        )
        assert (state, reason) == ("failed", "error: ValueError: cannot train at x=0.5")
        # The worker's own path of the trainer's file, as Python printed it there.
        assert f'File "{site / "faulty_trainers.py"}", line ' in kept, kept
        assert kept.splitlines()[-1] == "ValueError: cannot train at x=0.5"
        assert stack.workers[0].is_running(), stack.describe()
