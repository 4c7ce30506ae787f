"""Every way a trainer plugin can end a trial becomes one terminal state, never a dead worker."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from hpsearch.db import accounts, datasets
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Study, Trial, TrialState
from hpsearch.db.session import session_scope
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from hpsearch.worker import trainers
from tests.conftest import run_first_trial


def plugin_study(trainer: str, **overrides: Any) -> dict:
    study: dict = {
        "name": f"{trainer} study",
        "trainer": trainer,
        "config": {"x": 0.5},
        "seed": 7,
        "objective": {"metric": "loss", "direction": "minimize"},
        "budget": {"trials": 1},
    }
    return {**study, **overrides}


def run_one(url: str, document: dict, team: str = "alpha") -> Trial:
    """Store the study for `team`, queue its first trial and run it here, as a worker would."""
    upgrade(url)
    with session_scope(url) as session:
        team_row = accounts.team_named(session, team) or accounts.create_team(session, team)
        definition = StudyDefinition.model_validate(document)
        study_id = coordinator.create_study(session, team_id=team_row.id, definition=definition).id
    return run_first_trial(url, study_id)


def test_the_registry_loads_what_loads_and_logs_the_rest(
    test_trainers: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="hpsearch.worker.trainers"):
        found = trainers.installed()
    assert {"numpy", "quadratic", "raises", "reports-nan"} <= set(found)
    assert "not-a-trainer" not in found and "missing-module" not in found
    logged = caplog.text
    assert "'not-a-trainer'" in logged and "'missing-module'" in logged
    with pytest.raises(LookupError, match="trainer 'ridgeless' is not installed here"):
        trainers.get("ridgeless")


def test_a_plugin_trial_completes_with_its_metrics_and_the_study_seed(
    sqlite_url: str, test_trainers: Path
) -> None:
    trial = run_one(sqlite_url, plugin_study("quadratic", config={"x": 0.1}))
    assert trial.state == TrialState.COMPLETE
    assert trial.values == {"loss": pytest.approx((0.1 - 0.3) ** 2), "score": 7.0}
    assert trial.value == pytest.approx(0.04)


def test_an_exception_is_a_failed_trial_with_its_message_and_traceback(
    sqlite_url: str, test_trainers: Path
) -> None:
    trial = run_one(sqlite_url, plugin_study("raises"))
    assert trial.state == TrialState.FAILED
    assert trial.reason == "error: ValueError: cannot train at x=0.5"
    lines = (trial.traceback or "").splitlines()
    # As Python prints it, with the worker's full path of the trainer's file.
    assert lines[0] == "Traceback (most recent call last):"
    assert re.fullmatch(r'  File "/.+/site/faulty_trainers\.py", line \d+, in helper', lines[-3])
    assert lines[-2].strip() == 'raise ValueError(f"cannot train at x={x}")'
    assert lines[-1] == "ValueError: cannot train at x=0.5"


def test_a_huge_exception_message_is_cut_in_the_reason_and_the_traceback(
    sqlite_url: str, test_trainers: Path
) -> None:
    trial = run_one(sqlite_url, plugin_study("raises-huge"))
    assert trial.state == TrialState.FAILED
    reason, kept = trial.reason or "", trial.traceback or ""
    assert reason.startswith("error: RuntimeError: xxx") and reason.endswith(" …")
    assert len(reason) < 600 and "second line" not in reason
    lines = kept.splitlines()
    assert len(kept) < 4096 and len(lines) == 15
    # The frames nearest the raise are kept, then the message's first lines, each cut.
    assert "in deep" in lines[-5] and lines[-4].strip().startswith("raise RuntimeError(")
    assert lines[-3].startswith("RuntimeError: xxx") and lines[-3].endswith(" …")
    assert lines[-2:] == ["second line", "second line"]


@pytest.mark.parametrize(
    ("trainer", "reason", "values"),
    [
        ("reports-nan", "diverged at step 2 (loss nan)", {"loss": 1.0}),
        ("returns-inf", "diverged: final loss is inf", {"score": 1.0}),
        ("raises-diverged", "diverged: loss exploded", {"loss": 2.0}),
    ],
)
def test_non_finite_metrics_and_diverged_are_failed_diverged(
    sqlite_url: str, test_trainers: Path, trainer: str, reason: str, values: dict
) -> None:
    trial = run_one(sqlite_url, plugin_study(trainer))
    assert (trial.state, trial.reason, trial.values) == (TrialState.FAILED, reason, values)


def test_an_invalid_config_is_a_failed_trial_naming_the_setting(
    sqlite_url: str, test_trainers: Path
) -> None:
    # Stored past the API's schema check, as an older server might have: the worker still says.
    trial = run_one(sqlite_url, plugin_study("quadratic", config={"x": 7}))
    assert trial.state == TrialState.FAILED
    assert (trial.reason or "").startswith("error: invalid config: x: ")


def test_a_plugin_reads_its_own_teams_upload_and_never_another_teams(
    sqlite_url: str, test_trainers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        alpha = accounts.create_team(session, "alpha")
        stored, _ = datasets.store(
            session,
            team_id=alpha.id,
            name="rows.csv",
            format="csv",
            content=b"a,b\n1,2\n",
            summary={},
            created_by=None,
        )
        session.flush()
        dataset_id = stored.id
    monkeypatch.setenv("HPSEARCH_TEST_DATASET", str(dataset_id))
    own = run_one(sqlite_url, plugin_study("reads-dataset"), team="alpha")
    assert own.state == TrialState.COMPLETE and own.values["loss"] == len(b"a,b\n1,2\n")
    other = run_one(sqlite_url, plugin_study("reads-dataset"), team="beta")
    assert other.state == TrialState.FAILED
    assert f"no dataset {dataset_id} in this study's team" in (other.reason or "")


def test_a_study_given_a_deleted_studys_id_trains_its_own_definition(
    sqlite_url: str, test_trainers: Path
) -> None:
    first = run_one(sqlite_url, plugin_study("quadratic", config={"x": 0.1}))
    with session_scope(sqlite_url) as session:
        session.delete(session.get_one(Study, first.study_id))
    # SQLite gives the deleted study's id to the next study; this process has cached what it
    # read of the first one.
    second = run_one(sqlite_url, plugin_study("quadratic", config={"x": 0.9}))
    assert second.study_id == first.study_id
    assert second.values == {"loss": pytest.approx((0.9 - 0.3) ** 2), "score": 7.0}
