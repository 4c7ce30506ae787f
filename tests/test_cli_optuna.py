"""`hpsearch export optuna` and `hpsearch import optuna` against a real `hpsearch serve`
(SQLite, its local pool), with Optuna storages in SQLite files of the test's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
import yaml

from hpsearch.search.definition import StudyDefinition
from hpsearch.search.strategies.base import TrialRecord
from hpsearch.search.strategies.optuna_samplers import distribution
from tests.conftest import tiny_study
from tests.test_cli_client import Run, Server, _finish, _output, hpsearch, server

__all__ = ["hpsearch", "server"]  # fixtures, shared with the client commands' tests

SPACE = {
    "training.learning_rate": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
    "training.optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    "training.batch_size": {"type": "int", "low": 8, "high": 64, "step": 8},
}


def _run(server: Server, **overrides: object) -> dict[str, Any]:
    """A study of `tiny_study` with SPACE and `overrides`, run to its end."""
    document = tiny_study(space=SPACE, **overrides)
    with server.client() as client:
        study = client.create_study(document)
        return _finish(client, study["id"])


def _api(server: Server, path: str) -> Any:
    headers = {"Authorization": f"Bearer {server.token}"}
    answer = httpx.get(f"{server.url}/api/v1{path}", headers=headers)
    answer.raise_for_status()
    return answer.json()


@pytest.fixture(scope="module")
def pruned_study(server: Server) -> dict[str, Any]:
    """Twelve trials one at a time under a median pruner: some pruned mid-curve."""
    return _run(
        server,
        name="pruned",
        training={"optimizer": "adam", "learning_rate": 0.05, "epochs": 8, "batch_size": 32},
        strategy={"type": "random", "seed": 4},
        budget={"trials": 12, "parallelism": 1},
        pruner={"type": "median", "warmup_epochs": 1, "min_trials": 2},
    )


def test_an_exported_study_reads_back_in_optuna_as_on_the_server(
    hpsearch: Run, server: Server, pruned_study: dict[str, Any], tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study_id = pruned_study["id"]

    result = hpsearch("export", "optuna", str(study_id), "--storage", storage)

    assert result.returncode == 0, _output(result)
    loaded = optuna.load_study(study_name="pruned", storage=storage)
    assert loaded.direction == optuna.study.StudyDirection.MAXIMIZE
    assert loaded.user_attrs["hpsearch_study_id"] == study_id
    ours = _api(server, f"/studies/{study_id}/trials?limit=1000")["data"]
    theirs = loaded.get_trials()
    assert len(theirs) == len(ours) == 12
    space = StudyDefinition.model_validate(tiny_study(space=SPACE)).search_space()
    states = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}
    for trial, frozen in zip(ours, theirs, strict=True):
        assert frozen.user_attrs["hpsearch_trial_number"] == trial["number"]
        assert frozen.state.name == states[trial["state"]]
        decoded = {
            k: json.loads(v) if k == "training.optimizer" else v for k, v in frozen.params.items()
        }
        assert decoded == trial["params"]
        assert frozen.distributions == {k: distribution(space.params[k]) for k in trial["params"]}
        expected = [trial["values"]["val_accuracy"]] if trial["state"] == "complete" else None
        assert frozen.values == expected
        curve = _api(server, f"/studies/{study_id}/trials/{trial['number']}")["curve"]
        assert frozen.intermediate_values == {c["step"]: c["val_accuracy"] for c in curve}
        assert frozen.intermediate_values  # every trial reported epochs
        assert frozen.user_attrs.get("reason") == trial["reason"]
    pruned = [t for t in theirs if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(len(t.intermediate_values) < 8 for t in pruned)
    # optuna.visualization reads it as one of its own (plotly is optional to Optuna).
    if optuna.visualization.is_available():
        optuna.visualization.plot_intermediate_values(loaded)
        optuna.visualization.plot_optimization_history(loaded)


def test_a_coarse_to_fine_study_exports_its_coarse_trials_epochs_as_an_attribute(
    hpsearch: Run, server: Server, tmp_path: Path
) -> None:
    """A coarse round's trial carries its reduced epochs in its params, outside the space:
    Optuna's params are the space's, the epochs ride along as `hpsearch_settings`."""
    strategy = {"type": "coarse_to_fine", "rounds": 2, "samples_per_round": 2}
    study = _run(server, name="c2f", strategy=strategy, budget={"trials": 4})
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    result = hpsearch("export", "optuna", str(study["id"]), "--storage", storage)

    assert result.returncode == 0, _output(result)
    theirs = optuna.load_study(study_name="c2f", storage=storage).get_trials()
    settings = [t.user_attrs.get("hpsearch_settings") for t in theirs]
    assert settings == [{"training.epochs": 2}] * 2 + [None] * 2
    assert all(set(t.params) <= set(SPACE) for t in theirs)


def test_export_refuses_an_existing_optuna_study_unless_told_to_overwrite(
    hpsearch: Run, pruned_study: dict[str, Any], tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ("export", "optuna", str(pruned_study["id"]), "--storage", storage, "--study-name", "x")
    assert hpsearch(*args).returncode == 0

    again = hpsearch(*args)

    assert again.returncode == 2
    assert "--study-name" in again.stdout and "already has a study 'x'" in again.stdout
    assert len(optuna.load_study(study_name="x", storage=storage).trials) == 12  # not appended
    replaced = hpsearch(*args, "--overwrite")
    assert replaced.returncode == 0, _output(replaced)
    assert len(optuna.load_study(study_name="x", storage=storage).trials) == 12


def test_a_multi_objective_study_exports_with_its_directions_and_values(
    hpsearch: Run, server: Server, tmp_path: Path
) -> None:
    objectives = [
        {"metric": "val_accuracy", "direction": "maximize"},
        {"metric": "train_seconds", "direction": "minimize"},
    ]
    study = _run(server, name="pareto", objective=objectives, strategy={"type": "nsga2"})
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    result = hpsearch("export", "optuna", str(study["id"]), "--storage", storage)

    assert result.returncode == 0, _output(result)
    loaded = optuna.load_study(study_name="pareto", storage=storage)
    assert [d.name for d in loaded.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert loaded.metric_names == ["val_accuracy", "train_seconds"]
    ours = _api(server, f"/studies/{study['id']}/trials")["data"]
    assert [t.values for t in loaded.trials] == [
        [t["values"]["val_accuracy"], t["values"]["train_seconds"]] for t in ours
    ]


def _objective(trial: optuna.Trial) -> float:
    """A stand-in for accuracy that is best near learning rate 0.02 with adam and batch 16."""
    rate = trial.suggest_float("training.learning_rate", 0.001, 0.5, log=True)
    optimizer = trial.suggest_categorical("training.optimizer", ["adam", "sgd"])
    batch = trial.suggest_int("training.batch_size", 8, 64, step=8)
    return 1 - abs(rate - 0.02) - (optimizer == "sgd") * 0.1 - abs(batch - 16) / 1000


def _optuna_study(storage: str, trials: int = 12) -> optuna.Study:
    """Optuna's own TPE over SPACE, with one failed trial among the complete ones."""
    study = optuna.create_study(
        study_name="theirs",
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    study.optimize(_objective, n_trials=trials)
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    return study


def _tpe_file(folder: Path, trials: int = 3) -> tuple[Path, dict[str, Any]]:
    document = tiny_study(
        name="warm",
        space=SPACE,
        strategy={"type": "tpe", "seed": 3, "n_startup_trials": 10},
        budget={"trials": trials, "parallelism": 1},
    )
    path = folder / "warm.yaml"
    path.write_text(yaml.safe_dump(document))
    return path, document


def test_an_optuna_study_is_the_warm_start_tpe_learns_from(
    hpsearch: Run, server: Server, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    theirs = _optuna_study(storage)
    path, document = _tpe_file(tmp_path)

    result = hpsearch("import", "optuna", str(path), "--storage", storage, "--study", "theirs")

    assert result.returncode == 0, _output(result)
    assert "12 trials" in result.stdout and "1 fail" in result.stdout
    study_id = int(result.stdout.strip().splitlines()[-1])
    with server.client() as client:
        study = _finish(client, study_id)
    # The imported trials are history: complete, marked, not run, not in the budget.
    assert study["status"] == "complete"
    assert study["trials_imported"] == 12
    assert study["trials_finished"] == 3
    assert study["trials_by_state"] == {"complete": 15}
    assert "12 complete trials imported" in hpsearch("status", str(study_id)).stdout
    ours = _api(server, f"/studies/{study_id}/trials")["data"]
    complete = [t for t in theirs.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [(t["params"], t["values"], t["reason"]) for t in ours[:12]] == [
        (t.params, {"val_accuracy": t.value}, "imported") for t in complete
    ]
    assert all(t["reason"] is None and t["worker"] for t in ours[12:])
    # TPE modelled the history from its first trial: 12 complete trials are more than its 10
    # start-up ones, so trial 12 is what a sampler told all of them proposes, not a start-up
    # point (what the same study file without history starts with).
    definition = StudyDefinition.model_validate(document)
    space = definition.search_space()
    told = [
        TrialRecord(t["number"], t["params"], "complete", (t["values"]["val_accuracy"],))
        for t in ours[:12]
    ]
    modelled = definition.make_strategy().ask(space, told, 1)[0].params
    start_up = definition.make_strategy().ask(space, [], 1)[0].params
    assert ours[12]["params"] == modelled
    assert modelled != start_up


def test_import_names_an_unknown_optuna_study_and_what_the_storage_has(
    hpsearch: Run, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _optuna_study(storage, trials=2)
    path, _ = _tpe_file(tmp_path)

    result = hpsearch("import", "optuna", str(path), "--storage", storage, "--study", "nope")

    assert result.returncode == 2
    assert "--study: no study 'nope'" in result.stdout and "theirs" in result.stdout
    unusable = hpsearch("import", "optuna", str(path), "--storage", "nowhere", "--study", "x")
    assert unusable.returncode == 2
    assert "--storage: cannot use nowhere" in unusable.stdout


def test_import_names_the_optuna_trial_and_param_outside_the_space(
    hpsearch: Run, server: Server, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    theirs = _optuna_study(storage, trials=0)
    for batch in (8, 64):
        theirs.enqueue_trial({"training.batch_size": batch})
    theirs.optimize(_objective, n_trials=2)
    narrow = {**SPACE, "training.batch_size": {"type": "int", "low": 8, "high": 16, "step": 8}}
    path = tmp_path / "narrow.yaml"
    path.write_text(yaml.safe_dump(tiny_study(name="narrow", space=narrow)))
    args = ("import", "optuna", str(path), "--storage", storage, "--study", "theirs")

    refused = hpsearch(*args)

    assert refused.returncode == 2
    assert "Optuna trial 2: params.training.batch_size: 64 is not within [8, 16]" in (
        refused.stdout.replace("\n", " ")
    )
    skipped = hpsearch(*args, "--skip-invalid")
    assert skipped.returncode == 0, _output(skipped)
    assert "1 trials of Optuna study" in skipped.stdout
    assert "1 not in the space" in skipped.stdout


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (
            {"params": {"training.learning_rate": 0.9}, "values": [0.5]},
            "history.1.params.training.learning_rate",
        ),
        (
            {"params": {"training.learning_rate": 0.1, "x": 1}, "values": [0.5]},
            "history.1.params.x",
        ),
        ({"params": {"training.learning_rate": 0.1}, "values": [0.5, 0.2]}, "history.1.values"),
        ({"params": {"training.learning_rate": 0.1}, "values": []}, "history.1.values"),
    ],
)
def test_the_server_names_the_history_entry_and_field_it_refuses(
    server: Server, entry: dict[str, Any], field: str
) -> None:
    good = {"params": {"training.learning_rate": 0.1}, "values": [0.5]}
    headers = {"Authorization": f"Bearer {server.token}"}

    answer = httpx.post(
        f"{server.url}/api/v1/studies",
        json=tiny_study(history=[good, entry]),
        headers=headers,
    )

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field


def test_every_curve_pages_by_cursor_as_each_trials_own(
    server: Server, pruned_study: dict[str, Any]
) -> None:
    study_id = pruned_study["id"]
    with server.client() as client:
        paged = list(client.metrics(study_id, page=7))
        whole = list(client.metrics(study_id))
    assert paged == whole
    curves = [
        (trial["number"], point)
        for trial in _api(server, f"/studies/{study_id}/trials")["data"]
        for point in _api(server, f"/studies/{study_id}/trials/{trial['number']}")["curve"]
    ]
    reports = [(r["trial_number"], {"step": r["step"], **r["metrics"]}) for r in whole]
    assert len(reports) > 7 and sorted(reports, key=_by_step) == sorted(curves, key=_by_step)


def _by_step(report: tuple[int, dict[str, Any]]) -> tuple[int, int]:
    return report[0], report[1]["step"]
