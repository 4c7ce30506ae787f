"""Parameter importances: Optuna's PED-ANOVA on our history, through `param_importances`."""

from __future__ import annotations

import numpy as np
import pytest

from hpsearch.search.importance import param_importances
from hpsearch.search.space import CategoricalParam, FloatParam, IntParam, Space
from hpsearch.search.strategies.base import TrialRecord

SPACE = Space(
    {
        "x": FloatParam(type="float", low=0, high=1),
        "lr": FloatParam(type="float", low=1e-4, high=1, log=True),
        "opt": CategoricalParam(type="categorical", choices=["sgd", "momentum"]),
        "beta": FloatParam(type="float", low=0.5, high=0.99, when={"opt": ["momentum"]}),
        "units": IntParam(type="int", low=1, high=64),
    }
)


def history(n: int, seed: int = 0) -> list[TrialRecord]:
    """`n` complete trials at random points whose value depends on `x` only."""
    rng = np.random.default_rng(seed)
    trials = []
    for number in range(n):
        params = {
            "x": float(rng.uniform()),
            "lr": float(np.exp(rng.uniform(np.log(1e-4), 0))),
            "opt": str(rng.choice(["sgd", "momentum"])),
            "units": int(rng.integers(1, 65)),
        }
        if params["opt"] == "momentum":
            params["beta"] = float(rng.uniform(0.5, 0.99))
        value = (params["x"] - 0.3) ** 2
        trials.append(TrialRecord(number, params, "complete", (value,)))
    return trials


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_one_parameter_the_objective_depends_on_matters_most(direction: str) -> None:
    trials = history(200)
    if direction == "maximize":
        trials = [TrialRecord(t.number, t.params, t.state, (-t.values[0],)) for t in trials]  # type: ignore[index]
    answer = param_importances(SPACE, trials, direction)
    shares = answer["importances"]
    assert answer["reason"] is None and answer["trials_used"] == 200
    assert set(shares) == set(SPACE.params)  # the conditional beta included
    assert sum(shares.values()) == pytest.approx(1)
    assert next(iter(shares)) == "x"  # largest first
    assert shares["x"] > 0.5 and all(shares["x"] > 3 * v for k, v in shares.items() if k != "x")


def test_fewer_than_two_complete_trials_give_no_importances_and_say_why() -> None:
    trials = [*history(1), TrialRecord(1, {"x": 0.5}, "failed"), TrialRecord(2, {}, "running")]
    answer = param_importances(SPACE, trials, "minimize")
    assert answer["importances"] == {} and answer["trials_used"] == 1
    assert "at least 2 complete trials" in answer["reason"]


def test_one_searched_parameter_has_nothing_to_compare() -> None:
    space = Space({"x": FloatParam(type="float", low=0, high=1)})
    answer = param_importances(space, history(20), "minimize")
    assert answer["importances"] == {} and "one parameter" in answer["reason"]


def test_only_the_latest_trials_up_to_the_limit_are_used() -> None:
    answer = param_importances(SPACE, history(50), "minimize", limit=30)
    assert answer["trials_used"] == 30 and answer["reason"] is None


def test_a_trial_outside_the_space_is_left_out_rather_than_failing() -> None:
    odd = TrialRecord(99, {"x": 7.0, "lr": 0.1, "opt": "sgd", "units": 3}, "complete", (1.0,))
    answer = param_importances(SPACE, [*history(10), odd], "minimize")
    assert answer["trials_used"] == 10 and answer["importances"]
