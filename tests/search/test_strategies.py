"""Contract tests run over every strategy, as Optuna's sampler tests do."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from hpsearch.search.space import Space
from hpsearch.search.strategies.base import Strategy, TrialRecord
from hpsearch.search.strategies.coarse_to_fine import CoarseToFineStrategy
from hpsearch.search.strategies.grid import Grid, GridStrategy
from hpsearch.search.strategies.optuna_samplers import SAMPLER_KINDS, OptunaStrategy, make_sampler
from hpsearch.search.strategies.random import RandomStrategy
from tests.search.support import run_batches, space_of

SPACE = space_of(
    {
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
    }
)


def optuna_strategy(kind: str, seed: int = 3) -> OptunaStrategy:
    sampler = make_sampler(kind, seed=seed, n_startup_trials=5, population_size=8)
    return OptunaStrategy(sampler, ["minimize"], seed=seed)


STRATEGIES = [
    RandomStrategy(seed=3),
    GridStrategy(n=3),
    CoarseToFineStrategy(
        seed=3, rounds=3, samples_per_round=10, keep=0.3, margin=0.1, direction="minimize"
    ),
    *(optuna_strategy(kind) for kind in SAMPLER_KINDS),
]


def strategy_id(strategy: Strategy) -> str:
    if isinstance(strategy, OptunaStrategy):
        return type(strategy.study.sampler).__name__
    return type(strategy).__name__


def run(
    strategy: Strategy,
    trials: int,
    per_ask: int,
    objective: Callable[[dict], float] = lambda params: params["lr"],
    space: Space = SPACE,
) -> list[TrialRecord]:
    return run_batches(strategy, trials, per_ask, objective, space)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=strategy_id)
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


def test_tpe_with_a_fixed_seed_proposes_the_same_first_20_configs_twice() -> None:
    first = run(optuna_strategy("tpe", seed=11), 20, per_ask=1)
    second = run(optuna_strategy("tpe", seed=11), 20, per_ask=1)
    other = run(optuna_strategy("tpe", seed=12), 20, per_ask=1)
    assert [t.params for t in first] == [t.params for t in second]
    assert [t.params for t in first] != [t.params for t in other]


def test_tpe_start_up_trials_are_one_latin_hypercube_across_processes() -> None:
    def strategy() -> OptunaStrategy:
        sampler = make_sampler("tpe", seed=4, n_startup_trials=8, population_size=8)
        return OptunaStrategy(sampler, ["minimize"], seed=4, space_filling=8)

    history = run(strategy(), 8, per_ask=3)
    # lr spans 4 decades in 8 strata of half a decade; independent draws would often share one.
    strata = sorted(int((math.log10(t.params["lr"]) + 4) * 2) for t in history)
    assert strata == list(range(8))
    hidden = [str(t.params["hidden"]) for t in history]
    assert hidden.count("[32]") == hidden.count("[64, 64]") == 4
    # Another process, asked for trial 5 once trials 0-4 exist, draws the same hypercube's row.
    (row,) = strategy().ask(SPACE, history[:5], 1)
    assert row.params == history[5].params


@pytest.mark.parametrize("kind", ["tpe", "cmaes", "nsga2"])
def test_samplers_in_different_processes_do_not_repeat_each_others_configs(kind: str) -> None:
    """The API asks for trial 0 and 1; a worker process, with a fresh sampler of the same seed,
    asks for trial 2 once trial 0 has ended: it must not replay trial 0's draw."""
    api = optuna_strategy(kind, seed=5)
    started = api.ask(SPACE, [], 2)
    history = [
        TrialRecord(number=0, params=started[0].params, state="complete", values=(0.3,)),
        TrialRecord(number=1, params=started[1].params, state="running"),
    ]
    worker = optuna_strategy(kind, seed=5)
    (next_config,) = worker.ask(SPACE, history, 1)
    assert next_config.params not in [p.params for p in started]
    # ... and still deterministic: another fresh worker proposes the same.
    assert optuna_strategy(kind, seed=5).ask(SPACE, history, 1)[0].params == next_config.params


def test_failed_configs_are_told_so_tpe_ranks_them_last_and_trials_from_elsewhere_are_added() -> (
    None
):
    strategy = optuna_strategy("tpe")
    proposals = strategy.ask(SPACE, [], 3)
    elsewhere = {"optimizer": "sgd", "lr": 0.01, "batch": 32, "hidden": [32], "decay": 0.02}
    history = [
        TrialRecord(number=0, params=proposals[0].params, state="failed"),  # diverged
        TrialRecord(number=1, params=proposals[1].params, state="complete", values=(0.5,)),
        TrialRecord(number=2, params=proposals[2].params, state="failed", interrupted=True),
        # proposed by another process's coordinator, never asked here
        TrialRecord(number=3, params=elsewhere, state="complete", values=(0.25,)),
        TrialRecord(number=4, params=elsewhere, state="failed"),
    ]
    strategy.ask(SPACE, history, 1)
    trials = strategy.study.trials
    # Optuna's samplers skip FAIL trials; TPE ranks a pruned one that reported nothing last.
    assert [t.state.name for t in trials[:5]] == [
        "PRUNED",
        "COMPLETE",
        "FAIL",
        "COMPLETE",
        "PRUNED",
    ]
    assert trials[0].intermediate_values == {} and trials[4].intermediate_values == {}
    assert strategy.study.best_value == 0.25
    assert strategy.study.best_params["hidden"] == "[32]"  # categoricals travel as JSON


@pytest.mark.parametrize("direction, worst", [("maximize", 0.2), ("minimize", 0.9)])
def test_samplers_that_read_completed_trials_only_get_a_failure_as_the_worst_value(
    direction: str, worst: float
) -> None:
    sampler = make_sampler("cmaes", seed=0, n_startup_trials=5, population_size=8)
    strategy = OptunaStrategy(sampler, [direction], seed=0)
    proposals = strategy.ask(SPACE, [], 5)
    history = [TrialRecord(number=0, params=proposals[0].params, state="failed")]
    history += [
        TrialRecord(number=i, params=proposals[i].params, state="complete", values=(value,))
        for i, value in ((1, 0.2), (2, 0.9))
    ]
    history += [TrialRecord(number=3, params=proposals[3].params, state="failed")]
    strategy.ask(SPACE, history, 1)
    told = strategy.study.trials
    # Before any trial has completed there is no worst value to give.
    assert told[0].state.name == "FAIL"
    assert (told[3].state.name, told[3].values) == ("COMPLETE", [worst])


def test_a_failure_in_a_multi_objective_study_gets_the_worst_of_each_objective() -> None:
    sampler = make_sampler("nsga2", seed=0, n_startup_trials=5, population_size=4)
    strategy = OptunaStrategy(sampler, ["maximize", "minimize"], seed=0)
    proposals = strategy.ask(SPACE, [], 3)
    history = [
        TrialRecord(number=0, params=proposals[0].params, state="complete", values=(0.2, 1.0)),
        TrialRecord(number=1, params=proposals[1].params, state="complete", values=(0.9, 5.0)),
        TrialRecord(number=2, params=proposals[2].params, state="failed"),
    ]
    strategy.ask(SPACE, history, 1)
    assert strategy.study.trials[2].values == [0.2, 5.0]


def failing_region_draws(told_as_interrupted: bool, seed: int) -> int:
    """Of TPE's trials 10-39, how many fall where every trial fails (lr > 0.03)."""
    strategy, history = optuna_strategy("tpe", seed=seed), []
    for number in range(40):
        (proposal,) = strategy.ask(SPACE, history, 1)
        params = proposal.params
        fails = params["lr"] > 0.03
        value = None if fails else (params["decay"] + abs(params["lr"] - 0.01),)
        state = "failed" if fails else "complete"
        history.append(TrialRecord(number, params, state, value, interrupted=told_as_interrupted))
    return sum(params["lr"] > 0.03 for params in (t.params for t in history[10:]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tpe_learns_to_avoid_where_configs_fail(seed: int) -> None:
    """The failing region is 38% of lr's log range: told nothing of the failures (as when
    they are interruptions), TPE keeps drawing there; told them, it mostly stays away."""
    learnt, ignored = failing_region_draws(False, seed), failing_region_draws(True, seed)
    assert learnt <= 10 < 20 <= ignored
