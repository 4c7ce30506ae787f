from __future__ import annotations

import pytest

from hpsearch.search.pruners import HyperbandPruner, MedianPruner


def median_pruner(direction: str = "minimize") -> MedianPruner:
    return MedianPruner(direction, warmup_epochs=2, min_trials=3)


# Five completed curves; at step 4 their values are 1, 2, 3, 4, 5 (median 3).
COMPLETED = {n: {s: float(n + 1) * s / 4 for s in range(1, 11)} for n in range(5)}


def test_median_prunes_a_curve_worse_than_the_median_at_the_same_step() -> None:
    assert median_pruner().should_prune(9, 4, 3.5, COMPLETED)
    assert not median_pruner().should_prune(9, 4, 2.5, COMPLETED)


def test_median_follows_the_direction() -> None:
    assert median_pruner("maximize").should_prune(9, 4, 2.5, COMPLETED)
    assert not median_pruner("maximize").should_prune(9, 4, 3.5, COMPLETED)


def test_median_waits_for_warmup_and_enough_trials() -> None:
    assert not median_pruner().should_prune(9, 2, 100.0, COMPLETED)  # still warming up
    two_trials = {n: COMPLETED[n] for n in (0, 1)}
    assert not median_pruner().should_prune(9, 4, 100.0, two_trials)
    # a trial is never compared with its own curve
    assert not median_pruner().should_prune(0, 4, 100.0, {0: COMPLETED[0], 1: COMPLETED[1]})


def test_median_prunes_nan() -> None:
    assert median_pruner().should_prune(9, 4, float("nan"), COMPLETED)


def test_hyperband_brackets_and_rungs() -> None:
    pruner = HyperbandPruner("minimize", min_epochs=1, max_epochs=27, reduction_factor=3)
    assert pruner.brackets == 4  # rungs start at 1, 3, 9 or 27 epochs
    assert [s for s in range(1, 30) if pruner.is_rung(0, s)] == [1, 3, 9, 27]
    assert [s for s in range(1, 30) if pruner.is_rung(2, s)] == [9, 27]


@pytest.mark.parametrize(("value", "pruned"), [(0.5, False), (2.5, False), (3.5, True)])
def test_hyperband_keeps_the_best_third_at_a_rung(value: float, pruned: bool) -> None:
    pruner = HyperbandPruner("minimize", min_epochs=1, max_epochs=27, reduction_factor=3)
    # Bracket 0 holds numbers 0, 4, 8, ...; at epoch 3 they scored 1..8.
    others = {4 * k: {3: float(k + 1)} for k in range(8)}
    others[1] = {3: -100.0}  # another bracket: not a competitor
    # 9 values with this one: the best 9 // 3 = 3 go on, i.e. those <= the 3rd best.
    assert pruner.should_prune(36, 3, value, others) is pruned
    assert not pruner.should_prune(36, 2, 100.0, others)  # 2 is no rung
