from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from hpsearch.search.definition import StudyDefinition
from hpsearch.search.strategies.coarse_to_fine import CoarseToFineStrategy
from hpsearch.worker.engine.config import ConfigError
from tests.conftest import ROOT, tiny_study


def errors_of(document: dict) -> list[tuple[str, ...]]:
    with pytest.raises(ValidationError) as caught:
        StudyDefinition.model_validate(document)
    return [tuple(str(p) for p in e["loc"]) for e in caught.value.errors()]


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_example_is_a_valid_study(example: Path) -> None:
    StudyDefinition.model_validate(yaml.safe_load(example.read_text()))


def test_space_keys_must_be_settings() -> None:
    space = {"training.learning_rat": {"type": "float", "low": 0.1, "high": 1}}
    assert errors_of(tiny_study(space=space)) == [("space",)]


def test_errors_name_the_nested_field() -> None:
    assert ("budget", "trials") in errors_of(tiny_study(budget={"trials": 0}))
    assert ("training", "learning_rate") in errors_of(tiny_study(training={"learning_rate": -1.0}))
    assert ("objective", "0", "metric") in errors_of(
        tiny_study(objective={"metric": "val_acc", "direction": "maximize"})
    )


def test_unknown_fields_are_refused_not_ignored() -> None:
    assert ("model", "hiden") in errors_of(tiny_study(model={"type": "mlp", "hiden": [3]}))


def test_trial_config_writes_params_over_dotted_paths() -> None:
    definition = StudyDefinition.model_validate(tiny_study())
    config = definition.trial_config({"training.learning_rate": 0.3, "model.hidden": [7, 5]})
    assert config.training.learning_rate == 0.3
    assert config.model.hidden == [7, 5]
    assert config.training.epochs == 5  # the base stays where not overridden
    with pytest.raises(ConfigError, match="training.learning_rate"):
        definition.trial_config({"training.learning_rate": -0.3})


def test_coarse_to_fine_rounds_share_the_budget_unless_given() -> None:
    def built(strategy: dict, trials: int) -> CoarseToFineStrategy:
        study = tiny_study(
            strategy={"type": "coarse_to_fine", **strategy}, budget={"trials": trials}
        )
        made = StudyDefinition.model_validate(study).make_strategy()
        assert isinstance(made, CoarseToFineStrategy)
        return made

    # Each round 1.5 times the next, the last ending with the budget.
    assert built({"rounds": 4}, 60).sizes == [25, 17, 11, 7]
    assert built({"rounds": 4, "round_ratio": 2}, 60).sizes == [32, 16, 8, 4]
    assert built({"rounds": 4, "round_ratio": 1}, 61).sizes == [15, 15, 15, 16]
    assert built({"rounds": 4}, 3).sizes == [2, 2, 2, 2]  # a round needs two trials to rank
    assert built({"rounds": 4, "samples_per_round": 7}, 60).sizes == [7, 7, 7, 7]
    errors = errors_of(tiny_study(strategy={"type": "coarse_to_fine", "samples_per_round": 1}))
    assert ("strategy", "coarse_to_fine", "samples_per_round") in errors
    # Promotions grow from a quarter of round 1 to three quarters of the last round.
    assert built({"rounds": 4}, 60).promote == [0.0, 0.25, 0.5, 0.75]
    assert built({"rounds": 3, "promote": 0.5, "promote_last": 0.5}, 60).promote == [0, 0.5, 0.5]
    for field, bad in (("round_ratio", 0.5), ("promote", 1.5), ("promote_last", -0.1)):
        errors = errors_of(tiny_study(strategy={"type": "coarse_to_fine", field: bad}))
        assert ("strategy", "coarse_to_fine", field) in errors


def test_coarse_to_fine_epochs_per_round_default_to_halvings_and_are_checked() -> None:
    def built(strategy: dict, **overrides: object) -> CoarseToFineStrategy:
        study = tiny_study(strategy={"type": "coarse_to_fine", **strategy}, **overrides)
        made = StudyDefinition.model_validate(study).make_strategy()
        assert isinstance(made, CoarseToFineStrategy)
        return made

    training = {"epochs": 16}
    assert [built({}, training=training).epochs_at(r) for r in range(4)] == [2, 4, 8, None]
    given = built({"rounds": 2, "epochs_per_round": [0.25, 1]}, training=training)
    assert [given.epochs_at(r) for r in range(2)] == [4, None]
    # One fraction per round, each in (0, 1].
    errors = errors_of(tiny_study(strategy={"type": "coarse_to_fine", "epochs_per_round": [0.5]}))
    assert ("strategy", "coarse_to_fine", "epochs_per_round") in errors
    errors = errors_of(
        tiny_study(strategy={"type": "coarse_to_fine", "rounds": 1, "epochs_per_round": [1.5]})
    )
    assert ("strategy", "coarse_to_fine", "epochs_per_round", "0") in errors
    # Epochs searched: nothing to reduce; the schedule, unset, is off, and refused if given.
    searched = {"training.epochs": {"type": "int", "low": 2, "high": 8}}
    assert built({}, space=searched).epochs_at(0) is None
    study = tiny_study(
        space=searched, strategy={"type": "coarse_to_fine", "rounds": 1, "epochs_per_round": [1]}
    )
    with pytest.raises(ValidationError, match="strategy.epochs_per_round: training.epochs is"):
        StudyDefinition.model_validate(study)


def test_an_enqueued_fraction_of_an_int_parameter_is_refused_not_left_to_the_sampler() -> None:
    # Optuna's IntDistribution holds no 3.5: accepted, it made every later proposal fail.
    study = tiny_study(
        space={"training.epochs": {"type": "int", "low": 2, "high": 8}},
        strategy={"type": "tpe"},
        enqueue=[{"training.epochs": 3.5}],
    )
    with pytest.raises(ValidationError, match="enqueue.0"):
        StudyDefinition.model_validate(study)
