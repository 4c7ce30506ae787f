from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from hpsearch.db import accounts
from hpsearch.db.session import session_scope
from tests.conftest import tiny_study

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")


def hpsearch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HPSEARCH, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=_env_without_settings() | {"COLUMNS": "120"},
    )


def test_help_lists_every_command_and_each_has_its_own_help() -> None:
    top = hpsearch("--help")
    assert top.returncode == 0
    for command in ("run", "serve", "worker", "db"):
        assert command in top.stdout
        assert hpsearch(command, "--help").returncode == 0
    assert "upgrade" in hpsearch("db", "--help").stdout


def test_run_ends_with_the_budget_of_finished_trials_and_prints_the_best(tmp_path: Path) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(tiny_study(budget={"trials": 5, "parallelism": 2})))
    result = hpsearch("run", str(study), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "best trial" in result.stdout
    assert "val_accuracy" in result.stdout
    # The run ends without Python's teardown, yet closed its database: SQLite's WAL is back in
    # the file, which holds the whole study on its own (a copy of it alone is complete).
    assert sorted(path.name for path in tmp_path.glob("hpsearch.db*")) == ["hpsearch.db"]
    engine = create_engine(f"sqlite:///{tmp_path / 'hpsearch.db'}")
    with engine.connect() as db:
        states = db.execute(text("SELECT state FROM trials")).scalars().all()
    engine.dispose()
    assert sorted(states) == ["complete"] * 5


def test_run_refuses_an_invalid_file_naming_the_field(tmp_path: Path) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(tiny_study(budget={"trials": -3})))
    result = hpsearch("run", str(study), cwd=tmp_path)
    assert result.returncode == 2
    assert "budget.trials" in result.stdout
    assert not (tmp_path / "hpsearch.db").exists()


def test_worker_without_a_broker_explains_itself() -> None:
    result = hpsearch("worker")
    assert result.returncode == 2
    assert "HPSEARCH_BROKER_URL" in result.stdout


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert hpsearch("db", "upgrade", "--db", url).returncode == 0
    engine = create_engine(url)
    with engine.connect() as db:
        assert db.execute(text("SELECT count(*) FROM studies")).scalar() == 0
    engine.dispose()


GRID_STUDY = {
    "name": "interrupted-grid",
    "dataset": {"name": "digits"},
    "model": {"type": "mlp", "hidden": [32]},
    # Long enough (about a second a trial) for Ctrl-C to find trials running.
    "training": {"optimizer": "adam", "learning_rate": 0.01, "epochs": 400, "batch_size": 32},
    "space": {
        "training.learning_rate": {
            "type": "float",
            "low": 1e-3,
            "high": 0.1,
            "values": [1e-3, 0.01],
        },
        "training.batch_size": {"type": "categorical", "choices": [16, 32, 64, 128]},
    },
    "strategy": {"type": "grid"},
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "budget": {"trials": 8, "parallelism": 2},
}


def _states(db_path: Path) -> list[str]:
    if not db_path.exists():
        return []
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as db:
            return list(db.execute(text("SELECT state FROM trials")).scalars())
    except OperationalError:  # the schema is not there yet
        return []
    finally:
        engine.dispose()


def test_the_operator_lists_and_revokes_any_users_tokens(tmp_path: Path) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'hpsearch.db'}"]
    assert hpsearch("admin", "create-team", "alpha", *db).returncode == 0
    assert hpsearch("admin", "create-user", "ana", "--team", "alpha", *db).returncode == 0
    assert hpsearch("admin", "create-user", "bob", *db).returncode == 0
    laptop = hpsearch("admin", "create-token", "ana", "--name", "laptop", *db).stdout.strip()
    bob_secret = hpsearch("admin", "create-token", "bob", *db).stdout.strip()

    listed = hpsearch("admin", "list-tokens", "ana", *db)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "laptop" in listed.stdout and laptop[:12] in listed.stdout and "active" in listed.stdout
    assert laptop not in listed.stdout
    with session_scope(db[1]) as session:
        token_id = str(accounts.tokens_of(session, accounts.user_named(session, "ana").id)[0].id)
    assert token_id in listed.stdout
    # bob's token is not ana's: asked for as hers, nothing is revoked.
    refused = hpsearch("admin", "revoke-token", "bob", token_id, *db)
    assert refused.returncode == 2 and f"no token {token_id}" in refused.stdout
    assert hpsearch("admin", "revoke-token", "ana", token_id, *db).returncode == 0
    assert "revoked" in hpsearch("admin", "list-tokens", "ana", *db).stdout
    assert hpsearch("admin", "list-tokens", "nobody", *db).returncode == 2
    with session_scope(db[1]) as session:
        assert accounts.authenticate(session, laptop) is None
        assert accounts.authenticate(session, bob_secret) is not None


def _env_without_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}


def _run_grid_study_until_mid_way(tmp_path: Path) -> subprocess.Popen[str]:
    """`hpsearch run` of GRID_STUDY in `tmp_path`, returned once some trials finished and
    some are running."""
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(GRID_STUDY))
    run = subprocess.Popen(
        [HPSEARCH, "run", str(study)],
        cwd=tmp_path,
        env=_env_without_settings() | {"COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = _states(tmp_path / "hpsearch.db")
        if states.count("complete") >= 2 and "running" in states:
            return run
        assert run.poll() is None, run.communicate()
        time.sleep(0.1)
    run.kill()
    raise AssertionError(f"no trial was running mid-study: {_states(tmp_path / 'hpsearch.db')}")


def test_ctrl_c_stops_the_run_and_resume_ends_it_with_each_grid_point_once(
    tmp_path: Path,
) -> None:
    run = _run_grid_study_until_mid_way(tmp_path)
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the runner and its trial processes get it
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert "hpsearch run --resume 1" in out
    stopped = _states(tmp_path / "hpsearch.db")
    assert "running" not in stopped and 2 <= stopped.count("complete") < 8

    resumed = hpsearch("run", "--resume", "1", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "best trial" in resumed.stdout
    engine = create_engine(f"sqlite:///{tmp_path / 'hpsearch.db'}")
    with engine.connect() as db:
        trials = db.execute(text("SELECT state, grid_index, params FROM trials")).all()
        status = db.execute(text("SELECT status FROM studies")).scalar_one()
        steps = db.execute(
            text("SELECT count(*), count(DISTINCT trial_id) FROM trial_metrics")
        ).one()
    engine.dispose()
    assert status == "complete"
    assert sorted(state for state, _, _ in trials) == ["complete"] * 8
    assert sorted(index for _, index, _ in trials) == list(range(8))
    assert len({params for _, _, params in trials}) == 8
    assert steps[1] == 8  # every trial's curve, none written twice (step is unique per trial)


def test_resume_refuses_a_finished_study_and_needs_one_of_file_or_id(tmp_path: Path) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(tiny_study(budget={"trials": 2, "parallelism": 1})))
    assert hpsearch("run", str(study), cwd=tmp_path).returncode == 0
    finished = hpsearch("run", "--resume", "1", cwd=tmp_path)
    assert finished.returncode == 2 and "complete" in finished.stdout
    assert hpsearch("run", "--resume", "9", cwd=tmp_path).returncode == 2
    assert hpsearch("run", cwd=tmp_path).returncode == 2


def test_resume_after_the_runner_was_killed_retries_its_lost_trials(tmp_path: Path) -> None:
    run = _run_grid_study_until_mid_way(tmp_path)
    os.killpg(run.pid, signal.SIGKILL)  # a power cut: nothing is cleaned up
    run.wait(timeout=30)
    killed = _states(tmp_path / "hpsearch.db").count("running")
    assert killed >= 1

    # Lost soon after the resume; beating faster than that, so a live trial is never lost.
    quick = {
        "HPSEARCH_LOST_AFTER_S": "1.5",
        "HPSEARCH_HEARTBEAT_S": "0.2",
        "HPSEARCH_SWEEP_EVERY_S": "0.2",
    }
    resumed = subprocess.run(
        [HPSEARCH, "run", "--resume", "1"],
        cwd=tmp_path,
        env=_env_without_settings() | quick,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    engine = create_engine(f"sqlite:///{tmp_path / 'hpsearch.db'}")
    with engine.connect() as db:
        trials = db.execute(text("SELECT id, state, reason, retry_of, params FROM trials")).all()
    engine.dispose()
    lost = {t.id for t in trials if t.reason == "lost"}
    assert len(lost) == killed
    assert {t.retry_of for t in trials if t.retry_of is not None} == lost  # each ran again
    assert {t.state for t in trials if t.id not in lost} == {"complete"}  # none left queued
    assert len(trials) == 8 + killed  # the budget, each lost trial replaced by its retry
    complete = [t.params for t in trials if t.state == "complete"]
    assert len(set(complete)) == len(complete) == 8  # every grid point, once
