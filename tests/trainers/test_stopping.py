"""A trainer that does not stop by itself is stopped: by its study's timeout, by a cancel,
and, when it is out of the interruption's reach, by ending its process. A trial process that dies
takes only its own trials (and its pool's) down, never the embedded run."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from hpsearch.db.models import TrialState
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from tests.conftest import ROOT
from tests.trainers.test_runner import plugin_study, run_one

HPSEARCH = str(ROOT / ".venv/bin/hpsearch")


class Hung(BaseException):
    """The trial under test never ended: the fault, reported instead of a suite that hangs."""


@pytest.fixture
def hang_guard() -> Iterator[None]:
    def fail(signum: int, frame: FrameType | None) -> None:
        raise Hung("the trainer was never stopped")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def fast_beats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_HEARTBEAT_S", "0.2")
    get_settings.cache_clear()


def test_a_trainer_that_never_reports_ends_at_its_studys_timeout(
    sqlite_url: str, test_trainers: Path, fast_beats: None, hang_guard: None
) -> None:
    trial = run_one(sqlite_url, plugin_study("sleeps", budget={"trials": 1, "timeout_s": 1}))
    assert (trial.state, trial.reason) == (TrialState.FAILED, "timeout")


def test_a_trainer_that_ignores_stop_ends_when_its_study_is_cancelled(
    sqlite_url: str, test_trainers: Path, fast_beats: None, hang_guard: None
) -> None:
    def cancel_soon() -> None:
        with session_scope(sqlite_url) as session:
            assert coordinator.cancel_study(session, 1)

    threading.Timer(1.0, cancel_soon).start()
    trial = run_one(sqlite_url, plugin_study("ignores-stop"))
    assert (trial.state, trial.reason) == (TrialState.FAILED, coordinator.CANCELLED_REASON)
    assert trial.values == {"loss": 1.0}  # what it reported before, kept


def run_embedded(study_file: Path, database: Path, site: Path, **env: str) -> subprocess.Popen:
    """`hpsearch run` of `study_file` with the test trainers installed and short heartbeats."""
    env |= {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(site),
        "HPSEARCH_DATABASE_URL": f"sqlite:///{database}",
        "HPSEARCH_HEARTBEAT_S": "0.3",
        "HPSEARCH_LOST_AFTER_S": "2",
        "HPSEARCH_SWEEP_EVERY_S": "0.5",
    }
    command = [HPSEARCH, "run", str(study_file)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def assert_ran_to_its_end(run: subprocess.Popen) -> None:
    output = run.communicate(timeout=240)[0].decode()
    # Exit 1: no trial completed. It ended, rather than hanging on a trainer or a broken pool.
    assert run.returncode == 1 and "study 1 finished" in output, output


def write_study(folder: Path, document: dict) -> Path:
    path = folder / "study.json"
    path.write_text(json.dumps(document))
    return path


def trials_in(database: Path) -> list[tuple]:
    with sqlite3.connect(database) as db:
        return db.execute(
            "SELECT lower(state), reason, attempt FROM trials ORDER BY number, attempt"
        ).fetchall()


def test_a_trainer_stuck_out_of_reach_has_its_process_ended(
    tmp_path: Path, test_trainers: Path
) -> None:
    database, stuck = tmp_path / "stuck.db", tmp_path / "stuck"
    study_file = write_study(tmp_path, plugin_study("stuck"))
    run = run_embedded(study_file, database, test_trainers, HPSEARCH_TEST_STUCK=str(stuck))
    for _ in range(1200):  # its trainer is out of reach within a minute
        if stuck.exists() or run.poll() is not None:
            break
        time.sleep(0.05)
    with session_scope(f"sqlite:///{database}") as session:
        assert coordinator.cancel_study(session, 1)
    assert_ran_to_its_end(run)
    killed = "cancelled (its trainer did not stop: its process was killed)"
    assert trials_in(database) == [("failed", killed, 1)]


def test_an_embedded_run_outlives_trial_processes_that_die(
    tmp_path: Path, test_trainers: Path
) -> None:
    study = plugin_study(
        "crashes",
        space={"x": {"type": "float", "low": 0, "high": 1}},
        strategy={"type": "random", "seed": 3},
        budget={"trials": 2, "max_retries": 1, "parallelism": 2},
    )
    database = tmp_path / "crashes.db"
    assert_ran_to_its_end(run_embedded(write_study(tmp_path, study), database, test_trainers))
    # Every config ran once and once again, each run lost with its process: the budget holds
    # and the run ended instead of waiting on a broken pool.
    assert sorted(trials_in(database)) == sorted([("failed", "lost", 1), ("failed", "lost", 2)] * 2)
