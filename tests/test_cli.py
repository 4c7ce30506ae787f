from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text

from tests.conftest import tiny_study

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")


def hpsearch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HPSEARCH, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
        | {"COLUMNS": "120"},
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
