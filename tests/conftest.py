"""Fixtures shared by every test folder."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import undefer

import hpsearch.api
from hpsearch.db.models import Trial
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.worker import trainers
from hpsearch.worker.runner import run_trial
from tests.trainers.conftest import install_test_trainers

ROOT = Path(__file__).resolve().parent.parent

# hpsearch.api, .db, .search and .worker come from the venv's install, never from sys.path: the
# editable install of `make install-dev` maps them onto a checkout's folders. A venv installed
# from another checkout would test that one's code with these tests.
if Path(hpsearch.api.__file__).parent != ROOT / "api":
    pytest.exit(
        f"hpsearch.api is {hpsearch.api.__file__}, not this checkout's: run make install-dev here"
    )


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal gives it: a pytest started in the background by a non-interactive
    shell (as a CI may run it) starts with SIGINT ignored, which every process a test starts
    inherits, so the tests of Ctrl-C would send it into nothing."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite file made the process's configured database."""
    url = f"sqlite:///{tmp_path / 'hpsearch.db'}"
    monkeypatch.setenv("HPSEARCH_DATABASE_URL", url)
    monkeypatch.delenv("HPSEARCH_BROKER_URL", raising=False)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def run_first_trial(url: str, study_id: int) -> Trial:
    """Queue a stored study's first trial and run it here, as a worker would; the trial as it
    ended."""
    (trial_id,) = coordinator.refill(study_id, dispatch=lambda ids: None, url=url)
    run_trial(trial_id, url=url)
    with session_scope(url) as session:
        trial = session.get_one(Trial, trial_id, options=[undefer(Trial.traceback)])
        session.expunge(trial)
        return trial


def tiny_study(**overrides: object) -> dict:
    """A study definition that trains in well under a second per trial."""
    study: dict = {
        "name": "tiny",
        "dataset": {"name": "iris"},
        "model": {"type": "softmax"},
        "training": {"optimizer": "adam", "learning_rate": 0.05, "epochs": 5, "batch_size": 32},
        "space": {
            "training.learning_rate": {"type": "float", "low": 0.001, "high": 0.5, "log": True}
        },
        "strategy": {"type": "random", "seed": 1},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "budget": {"trials": 4, "parallelism": 2},
    }
    study.update(overrides)
    return study


@pytest.fixture
def test_trainers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test trainers installed for this process (and for processes it starts, through
    PYTHONPATH)."""
    folder = install_test_trainers(tmp_path / "site")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    trainers.installed.cache_clear()
    yield folder
    trainers.installed.cache_clear()
