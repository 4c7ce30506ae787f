"""A pbt study run whole through the coordinator and the runner (SQLite, in this process): each
generation starts from its parent's final state, which the runner keeps for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hpsearch.db import accounts
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Study, StudyStatus, Trial, TrialMetric
from hpsearch.db.session import session_scope
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from hpsearch.search.trainer_schema import SettingError
from hpsearch.worker import trainers
from hpsearch.worker.engine import train
from hpsearch.worker.runner import run_trial

POPULATION, INTERVAL, EPOCHS = 4, 3, 9


def pbt_study(**overrides: Any) -> dict:
    study = {
        "name": "pbt",
        "dataset": {"name": "iris"},
        "model": {"type": "mlp", "hidden": [8]},
        "training": {"optimizer": "momentum", "epochs": EPOCHS, "batch_size": 16},
        "space": {
            "training.learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
            "training.momentum": {"type": "float", "low": 0.5, "high": 0.95},
        },
        "strategy": {"type": "pbt", "seed": 5, "population": POPULATION, "interval": INTERVAL},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "budget": {"trials": POPULATION * EPOCHS // INTERVAL, "parallelism": 2},
    }
    return study | overrides


def run_study(url: str, document: dict) -> int:
    upgrade(url)
    with session_scope(url) as session:
        team = accounts.create_team(session, "alpha")
        definition = StudyDefinition.model_validate(document)
        study_id = coordinator.create_study(session, team_id=team.id, definition=definition).id
    queue: list[int] = []
    coordinator.refill(study_id, dispatch=queue.extend, url=url)
    while queue:
        queue.extend(run_trial(queue.pop(0), url=url))
    return study_id


def without_timings(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k != "epoch_seconds"}


def test_a_pbt_study_trains_generations_from_their_parents_states(sqlite_url: str) -> None:
    document = pbt_study()
    study_id = run_study(sqlite_url, document)
    definition = StudyDefinition.model_validate(document)
    with session_scope(sqlite_url) as session:
        study = session.get_one(Study, study_id)
        assert study.status == StudyStatus.COMPLETE
        trials = session.query(Trial).filter_by(study_id=study_id).order_by(Trial.number).all()
        curves = {
            t.number: [
                (m.step, without_timings(m.metrics))
                for m in session.query(TrialMetric).filter_by(trial_id=t.id).order_by("step")
            ]
            for t in trials
        }
        state = study.strategy_state
        lineages = [(t.number, t.params, t.lineage, t.state.value) for t in trials]
    assert len(lineages) == POPULATION * EPOCHS // INTERVAL
    assert all(trial_state == "complete" for *_, trial_state in lineages)
    by_number = {number: (params, lineage) for number, params, lineage, _ in lineages}
    copies = 0
    for number, params, lineage, _ in lineages:
        generation = lineage["generation"]
        # Each trial reports only its own generation's epochs ...
        assert [step for step, _ in curves[number]] == list(
            range(generation * INTERVAL + 1, (generation + 1) * INTERVAL + 1)
        )
        if generation == 0:
            continue
        parent_params, parent_lineage = by_number[lineage["parent"]]
        assert parent_lineage["generation"] == generation - 1
        if "copied" in lineage:
            copies += 1
            assert parent_lineage["member"] == lineage["copied"] != lineage["member"]
            continue
        assert parent_lineage["member"] == lineage["member"]
        # ... and one that went on from its own state continues its parent's run exactly: the
        # two curves joined are the curve of one run of both generations' epochs.
        whole = train(definition.trial_config(params)).history
        upto = (generation + 1) * INTERVAL
        lineage_curve = curves[number]
        ancestor = lineage
        while ancestor["parent"] is not None:
            parent = ancestor["parent"]
            ancestor = by_number[parent][1]
            if "copied" in ancestor:
                break
            lineage_curve = curves[parent] + lineage_curve
        else:
            assert [m for _, m in lineage_curve] == [without_timings(m) for m in whole[:upto]]
    assert copies >= (EPOCHS // INTERVAL - 1)  # the bottom quarter copies every generation
    assert [len(g) for g in state["generations"]] == [POPULATION] * (EPOCHS // INTERVAL)


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"budget": {"trials": 10}}, "budget.trials", "= 12 trials, not 10"),
        ({"pruner": {"type": "median"}}, "pruner", "replaces its worst members"),
        ({"enqueue": [{"training.learning_rate": 0.01, "training.momentum": 0.9}]}, "enqueue", ""),
    ],
)
def test_a_pbt_study_that_cannot_run_is_refused_naming_the_field(
    overrides: dict, field: str, reason: str
) -> None:
    with pytest.raises(ValidationError, match=f"{field}.*{reason}"):
        StudyDefinition.model_validate(pbt_study(**overrides))


def counter_study(**overrides: Any) -> dict:
    study = {
        "name": "pbt-plugin",
        "trainer": "counter",
        "config": {"rate": 0.1, "steps": 6},
        "space": {"rate": {"type": "float", "low": 0.01, "high": 0.5, "log": True}},
        "strategy": {"type": "pbt", "population": 2, "interval": 3, "steps_setting": "steps"},
        "objective": {"metric": "loss", "direction": "minimize"},
        "budget": {"trials": 4},
    }
    return study | overrides


def test_a_resumable_plugin_trains_a_pbt_study_from_its_parents_states(
    sqlite_url: str, test_trainers: Path
) -> None:
    definition = StudyDefinition.model_validate(counter_study())
    definition.check_trainer(trainers.describe(trainers.get("counter")))  # accepted
    study_id = run_study(sqlite_url, counter_study())
    with session_scope(sqlite_url) as session:
        trials = session.query(Trial).filter_by(study_id=study_id).order_by(Trial.number).all()
        curves = {
            t.number: [
                (m.step, m.metrics["loss"])
                for m in session.query(TrialMetric).filter_by(trial_id=t.id).order_by("step")
            ]
            for t in trials
        }
        rows = [(t.number, t.params, t.lineage, t.state.value) for t in trials]
    assert [state for *_, state in rows] == ["complete"] * 4
    for number, params, lineage, _ in rows[2:]:
        # Steps 4 to 6 go on from the parent's x (loss 10 - x at step 3) at this trial's rate.
        parent_loss = curves[lineage["parent"]][-1][1]
        assert [step for step, _ in curves[number]] == [4, 5, 6]
        assert curves[number][0][1] == pytest.approx(parent_loss - params["rate"])


def test_pbt_refuses_a_plugin_that_does_not_resume_its_state(test_trainers: Path) -> None:
    definition = StudyDefinition.model_validate(
        counter_study(
            trainer="quadratic",
            config={"x": 0.5, "steps": 6},
            space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
        )
    )
    with pytest.raises(SettingError, match="pbt needs trainer quadratic to save and resume"):
        definition.check_trainer(trainers.describe(trainers.get("quadratic")))


def test_pbt_with_a_plugin_needs_the_setting_that_counts_its_steps() -> None:
    strategy = {"type": "pbt", "population": 2, "interval": 3}
    with pytest.raises(ValidationError, match="strategy.steps_setting: pbt needs the setting"):
        StudyDefinition.model_validate(counter_study(strategy=strategy))
