"""Contract tests run over every strategy, as Optuna's sampler tests do."""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter

from search.space import Param, Space
from search.strategies.base import Strategy, TrialRecord
from search.strategies.grid import Grid, GridStrategy
from search.strategies.random import RandomStrategy

PARAM = TypeAdapter(Param)

SPACE = Space(
    {
        name: PARAM.validate_python(p)
        for name, p in {
            "optimizer": {"type": "categorical", "choices": ["sgd", "momentum", "adam"]},
            "momentum": {
                "type": "float",
                "low": 0.5,
                "high": 0.99,
                "when": {"optimizer": ["momentum"]},
            },
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
            "batch": {"type": "int", "low": 16, "high": 256, "log": True},
            "hidden": {"type": "categorical", "choices": [[32], [64, 64]]},
            "decay": {"type": "float", "low": 0.0, "high": 0.1, "step": 0.02},
        }.items()
    }
)

STRATEGIES = [RandomStrategy(seed=3), GridStrategy(n=3)]


def run(strategy: Strategy, trials: int, per_ask: int) -> list[TrialRecord]:
    history: list[TrialRecord] = []
    while len(history) < trials:
        proposals = strategy.ask(SPACE, history, min(per_ask, trials - len(history)))
        if not proposals:
            break
        history += [
            TrialRecord(
                number=len(history) + i, params=p.params, state="complete", grid_index=p.grid_index
            )
            for i, p in enumerate(proposals)
        ]
    return history


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: type(s).__name__)
def test_every_proposal_lies_in_the_space_with_inactive_parameters_absent(
    strategy: Strategy,
) -> None:
    history = run(strategy, 60, per_ask=4)
    assert len(history) == 60
    for trial in history:
        assert SPACE.contains(trial.params), trial.params
        assert ("momentum" in trial.params) == (trial.params["optimizer"] == "momentum")
        assert 0 <= trial.params["decay"] <= 0.1
        assert math.isclose(trial.params["decay"] / 0.02, round(trial.params["decay"] / 0.02))


def test_random_is_reproducible_per_trial_number_whatever_the_batching() -> None:
    one_by_one = run(RandomStrategy(seed=3), 10, per_ask=1)
    in_fives = run(RandomStrategy(seed=3), 10, per_ask=5)
    other_seed = run(RandomStrategy(seed=4), 10, per_ask=5)
    assert [t.params for t in one_by_one] == [t.params for t in in_fives]
    assert [t.params for t in one_by_one] != [t.params for t in other_seed]


def test_random_does_not_depend_on_the_order_parameters_are_listed_in() -> None:
    reordered = Space(dict(reversed(SPACE.params.items())))
    forward = RandomStrategy(seed=3).ask(SPACE, [], 10)
    backward = RandomStrategy(seed=3).ask(reordered, [], 10)
    assert [p.params for p in forward] == [p.params for p in backward]


def test_random_log_parameters_spread_over_the_decades() -> None:
    lrs = [t.params["lr"] for t in run(RandomStrategy(seed=0), 400, per_ask=50)]
    below_1e_2 = sum(lr < 1e-2 for lr in lrs) / len(lrs)
    # Log-uniform over 4 decades puts half of the samples below 1e-2; uniform would put 1%.
    assert 0.4 < below_1e_2 < 0.6


def test_grid_covers_the_product_exactly_once_then_stops() -> None:
    history = run(GridStrategy(n=3), 10_000, per_ask=7)
    # optimizer: sgd and adam alone, momentum with its 3 values -> 5 branches;
    # then lr, batch and decay 3 points each, hidden 2 choices.
    assert len(history) == len(Grid(SPACE, 3)) == 5 * 3 * 3 * 3 * 2
    keys = [tuple(sorted((k, str(v)) for k, v in t.params.items())) for t in history]
    assert len(set(keys)) == len(keys)
    assert sorted(t.grid_index for t in history) == list(range(len(history)))
