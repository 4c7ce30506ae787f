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


def test_fewer_than_the_minimum_of_complete_trials_give_no_importances_and_say_why() -> None:
    trials = [*history(9), TrialRecord(9, {"x": 0.5}, "failed"), TrialRecord(10, {}, "running")]
    answer = param_importances(SPACE, trials, "minimize")
    assert answer["importances"] == {} and answer["trials_used"] == 9
    assert "at least 10 complete trials" in answer["reason"]
    assert param_importances(SPACE, history(10), "minimize")["importances"]


def test_a_conditional_parameter_is_judged_only_where_it_is_active() -> None:
    """momentum beats sgd everywhere, and within momentum beta matters: the optimizer and
    beta both count. Judged over every trial, beta (absent from all sgd trials, so telling
    them apart as well as the optimizer does) took the optimizer's share too (0.93 to 0.04)."""
    rng = np.random.default_rng(1)
    trials = [
        TrialRecord(
            t.number,
            t.params,
            "complete",
            (1.0 + rng.uniform() if t.params["opt"] == "sgd" else (t.params["beta"] - 0.7) ** 2,),
        )
        for t in history(200)
    ]
    shares = param_importances(SPACE, trials, "minimize")["importances"]
    assert shares["opt"] > 0.25 and shares["beta"] > 0.25
    assert sum(shares.values()) == pytest.approx(1)


def test_trials_are_compared_only_with_trials_of_the_same_epochs() -> None:
    """coarse_to_fine's 2-epoch trials here depend on lr alone, its full ones on x alone:
    the full ones are the study's answer, the 2-epoch ones are not mixed in."""
    short = [
        TrialRecord(t.number, {**t.params, "training.epochs": 2}, "complete", (t.params["lr"],))
        for t in history(100, seed=1)
    ]
    full = [TrialRecord(100 + t.number, t.params, t.state, t.values) for t in history(30)]
    answer = param_importances(SPACE, [*short, *full], "minimize")
    assert answer["trials_used"] == 30 and next(iter(answer["importances"])) == "x"
    # With too few full trials, the most numerous epochs speak: lr, for the 2-epoch ones.
    answer = param_importances(SPACE, [*short, *full[:5]], "minimize")
    assert answer["trials_used"] == 100 and next(iter(answer["importances"])) == "lr"


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
