"""coarse_to_fine as pure functions: fidelity per round, arms, the drop rule, no collapse."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from hpsearch.search.space import Space
from hpsearch.search.strategies.base import TrialRecord
from hpsearch.search.strategies.coarse_to_fine import (
    CoarseToFineStrategy,
    pick_arm,
    promotion_shares,
    round_sizes,
    turns,
)
from tests.search.support import run_batches, space_of

EPOCHS = "training.epochs"
SPACE = space_of(
    {
        "optimizer": {"type": "categorical", "choices": ["sgd", "momentum", "adam"]},
        "momentum": {
            "type": "float",
            "low": 0.5,
            "high": 0.99,
            "when": {"optimizer": ["momentum"]},
        },
        "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
        "hidden": {"type": "categorical", "choices": [[16], [32], [64], [64, 32]]},
    }
)
# Each optimizer's own best learning rate, as on a real task: sgd high, adam low.
BEST_LR = {"sgd": 0.3, "momentum": 0.03, "adam": 1e-3}


def loss(params: dict) -> float:
    """A bowl per arm around its best learning rate; momentum best at 0.9; adam best of all."""
    arm = params["optimizer"]
    value = (math.log10(params["lr"]) - math.log10(BEST_LR[arm])) ** 2
    value += {"sgd": 1.0, "momentum": 0.5, "adam": 0.0}[arm]
    return value + (params.get("momentum", 0.9) - 0.9) ** 2


def strategy(**changes: object) -> CoarseToFineStrategy:
    settings: dict = {
        "seed": 0,
        "rounds": 4,
        "samples_per_round": 12,
        "keep": 0.25,
        "margin": 0.1,
        "direction": "minimize",
        "epochs_key": EPOCHS,
        "full_epochs": 16,
    }
    return CoarseToFineStrategy(**{**settings, **changes})


def run(
    search: CoarseToFineStrategy,
    trials: int,
    objective: Callable[[dict], float] = loss,
    space: Space = SPACE,
    per_ask: int = 5,
) -> list[TrialRecord]:
    return run_batches(search, trials, per_ask, objective, space)


def record(number: int, value: float | None, **params: object) -> TrialRecord:
    state = "complete" if value is not None else "failed"
    return TrialRecord(number, dict(params), state, (value,) if value is not None else None)


def test_rounds_train_an_eighth_a_quarter_a_half_then_all_of_the_epochs() -> None:
    history = run(strategy(), 48)
    per_round = [{t.params.get(EPOCHS) for t in history[r * 12 : (r + 1) * 12]} for r in range(4)]
    # The last round trains the study's own epochs: no key, the trial is the space's point.
    assert per_round == [{2}, {4}, {8}, {None}]
    rounds = strategy().describe(SPACE, history)["rounds"]
    assert [(r["epochs"], r["fraction"]) for r in rounds] == [
        (2, 0.125),
        (4, 0.25),
        (8, 0.5),
        (16, 1.0),
    ]


def test_a_trials_cost_is_its_rounds_epochs_over_the_studys() -> None:
    # Rounds of 12 trials at 2, 4, 8 and 16 of 16 epochs: 1/8, 1/4, 1/2 and 1 of a full trial.
    search = strategy()
    assert search.cost(0, 12) == 12 * 0.125
    assert search.cost(10, 14) == 2 * 0.125 + 2 * 0.25
    assert search.cost(0, 48) == 12 * (0.125 + 0.25 + 0.5 + 1)
    assert search.cost(46, 50) == 4.0  # trials past the last round train as it does
    assert search.cost(5, 5) == 0.0
    assert strategy(epochs_key=None, full_epochs=None).cost(0, 48) == 48.0


def test_without_a_setting_to_reduce_every_round_trains_in_full() -> None:
    history = run(strategy(epochs_key=None, full_epochs=None), 24)
    assert all(EPOCHS not in t.params for t in history)


def test_each_arm_narrows_its_own_learning_rate_and_its_own_children() -> None:
    search = strategy(samples_per_round=24, drop_margin=100.0)  # none dropped: all narrow
    last = search.plan(SPACE, run(search, 72))[-1]
    assert set(last.arms) == {"sgd", "momentum", "adam"}
    for arm, best in BEST_LR.items():
        box = last.arms[arm]["lr"]
        assert box.low <= best <= box.high, (arm, box)
        assert math.log(box.high / box.low) < 0.6 * math.log(1.0 / 1e-5)
    # adam's box and sgd's do not even overlap: one shared box would have lost one of them.
    assert last.arms["adam"]["lr"].high < last.arms["sgd"]["lr"].low
    # momentum is narrowed where it is active, and left whole where it never is.
    assert last.arms["momentum"]["momentum"].high - last.arms["momentum"]["momentum"].low < 0.49
    assert last.arms["sgd"]["momentum"].low == 0.5 and last.arms["sgd"]["momentum"].high == 0.99


def test_round_zero_tries_every_arm_across_its_range() -> None:
    first = [p.params for p in strategy().ask(SPACE, [], 12)]
    for arm in BEST_LR:
        lrs = sorted(c["lr"] for c in first if c["optimizer"] == arm)
        assert len(lrs) == 4
        # A Latin hypercube per arm: one learning rate in each quarter of the decades.
        assert [int((math.log10(lr) + 5) / 1.25) for lr in lrs] == [0, 1, 2, 3]


def test_an_arm_with_enough_samples_beaten_past_the_margin_is_dropped() -> None:
    search = strategy(samples_per_round=9, arm_min_trials=3)
    # Round 0, all at 2 epochs: adam best, momentum middling, sgd's best below the median.
    values = {"sgd": [6.0, 6.5, 7.0], "momentum": [2.0, 3.0, 9.0], "adam": [1.0, 4.0, 5.0]}
    history = [
        record(3 * i + j, values[arm][i], optimizer=arm, lr=0.01, hidden=[16], **{EPOCHS: 2})
        for i in range(3)
        for j, arm in enumerate(values)
    ]
    # Best 1.0, median 5.0: sgd's best (6.0) is more than 1 x (5.0 - 1.0) behind the best.
    second = search.plan(SPACE, history)[1]
    assert second.dropped == ["sgd"]
    assert set(second.arms) == {"momentum", "adam"}
    # A wider margin keeps it, and so does too few samples.
    assert set(strategy(samples_per_round=9, drop_margin=1.5).plan(SPACE, history)[1].arms) == {
        "sgd",
        "momentum",
        "adam",
    }
    assert "sgd" in strategy(samples_per_round=9, arm_min_trials=4).plan(SPACE, history)[1].arms


def test_the_leading_arm_is_never_dropped_and_the_result_names_each_arms_best() -> None:
    history = run(strategy(arm_min_trials=2), 48)
    state = strategy(arm_min_trials=2).describe(SPACE, history)
    result = state["result"]
    assert result["winner"] == "adam" and result["epochs"] == 16
    adam = result["arms"]["adam"]
    assert adam["epochs"] == 16 and adam["params"]["optimizer"] == "adam"
    assert adam["value"] == min(
        t.value for t in history if t.params["optimizer"] == "adam" and EPOCHS not in t.params
    )
    dropped = {arm for r in state["rounds"] for arm in r["dropped"]}
    assert "adam" not in dropped and dropped  # sgd (1.0 behind) goes early
    for arm in dropped:
        assert result["arms"][arm]["dropped_after_round"] is not None
        assert result["arms"][arm]["epochs"] < 16  # never trained in full, never compared so


def test_trials_are_ranked_only_against_trials_of_the_same_epochs() -> None:
    search = strategy(samples_per_round=4, drop_margin=100.0)
    base = {"optimizer": "adam", "hidden": [16]}
    history = [
        # A full-epoch trial (imported, or a retry) among round 0's numbers: its far better
        # value was bought with 8 times the epochs and must not steer round 0's narrowing.
        record(0, 0.01, **base, lr=1e-5),
        record(1, 1.0, **base, lr=0.5, **{EPOCHS: 2}),
        record(2, 2.0, **base, lr=0.4, **{EPOCHS: 2}),
        record(3, 3.0, **base, lr=0.3, **{EPOCHS: 2}),
    ]
    box = search.plan(SPACE, history)[1].arms["adam"]["lr"]
    assert box.low <= 0.5 <= box.high
    assert box.low > 1e-4


def test_a_box_at_most_halves_per_round_and_never_narrows_below_its_minimum_width() -> None:
    history = [
        record(i, float(i), optimizer="adam", hidden=[16], lr=0.748, **{EPOCHS: 2})
        for i in range(4)
    ]
    whole = math.log(1.0 / 1e-5)

    def width(min_width: float) -> float:
        search = strategy(samples_per_round=4, min_width=min_width, drop_margin=100.0)
        box = search.plan(SPACE, history)[1].arms["adam"]["lr"]
        assert box.low <= 0.748 <= box.high <= 1.0
        return math.log(box.high) - math.log(box.low)

    # Every kept trial at one learning rate: a box of one point, were it not for both rules.
    assert width(0.1) == pytest.approx(0.5 * whole)
    assert width(0.7) == pytest.approx(0.7 * whole)
    # Over many rounds of one point, the box halves down to its minimum width, no further.
    search = strategy(rounds=6, samples_per_round=4, min_width=0.1, drop_margin=100.0)
    flat = run(search, 24, lambda p: 1.0, per_ask=4)
    # (The arm that leads the ties takes most draws, so it is the one that narrows.)
    widths = [
        math.log(box["lr"].high / box["lr"].low)
        for r in search.plan(SPACE, flat)
        for box in r.arms.values()
    ]
    assert min(widths) == pytest.approx(0.1 * whole)


def test_a_configuration_already_run_is_not_proposed_again() -> None:
    small = space_of(
        {
            "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
            "batch": {"type": "int", "low": 1, "high": 4},
        }
    )
    history = run(strategy(samples_per_round=3, rounds=3), 100, lambda p: p["batch"], small)
    keys = [tuple(sorted(t.params.items())) for t in history]
    assert len(set(keys)) == len(keys)
    # 8 configurations at each of the 3 fidelities at most: the strategy then has no more.
    assert len(history) <= 24


def test_the_arm_is_the_categorical_conditions_depend_on() -> None:
    assert pick_arm(SPACE) == "optimizer"
    plain = space_of(
        {
            "model.hidden": {"type": "categorical", "choices": [[8], [16]]},
            "training.optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
        }
    )
    assert pick_arm(plain) == "training.optimizer"
    assert pick_arm(space_of({"x": {"type": "float", "low": 0, "high": 1}})) is None


def test_proposals_do_not_depend_on_the_batching() -> None:
    one_by_one = run(strategy(), 30, per_ask=1)
    in_sixes = run(strategy(), 30, per_ask=6)
    assert [t.params for t in one_by_one] == [t.params for t in in_sixes]


def test_a_round_waits_for_the_one_before_to_finish() -> None:
    search = strategy(samples_per_round=4)
    first = search.ask(SPACE, [], 6)
    assert len(first) == 4
    running = [TrialRecord(i, p.params, "running") for i, p in enumerate(first)]
    assert search.ask(SPACE, running, 2) == []


def test_the_budget_is_split_so_that_each_round_has_ratio_times_the_next() -> None:
    # Ratio 2 with fidelities doubling: every round trains about the same epochs, as in one
    # of Hyperband's brackets; the last round takes what the others leave.
    assert round_sizes(60, 4, 2.0) == [32, 16, 8, 4]
    assert round_sizes(61, 4, 2.0) == [33, 16, 8, 4]
    assert round_sizes(60, 4, 1.0) == [15, 15, 15, 15]
    assert round_sizes(3, 4, 2.0) == [2, 2, 2, 2]  # a round needs two trials to rank
    sizes = round_sizes(60, 4, 2.0)
    epochs = [n * f for n, f in zip(sizes, [2, 4, 8, 16], strict=True)]
    assert max(epochs) / min(epochs) == 1.0


def test_the_leading_arm_takes_every_other_new_draw_and_the_others_take_turns() -> None:
    live = ["sgd", "momentum", "adam"]
    assert turns(live, None, 6) == ["sgd", "momentum", "adam", "sgd", "momentum", "adam"]
    assert turns(live, "adam", 6) == ["adam", "sgd", "adam", "momentum", "adam", "adam"]


def test_a_round_starts_with_the_best_of_the_round_before_trained_longer() -> None:
    search = strategy(samples_per_round=[12, 8, 4, 2], promote=0.25, drop_margin=100.0)
    history = run(search, 12)
    ranked = sorted(history, key=lambda t: t.value)  # type: ignore[arg-type, return-value]
    second = search.ask(SPACE, history, 8)
    assert [r["trials"] for r in search.describe(SPACE, history)["rounds"]] == [12, 8]
    # A quarter of round 1's 8 trials: round 0's best two, best first, at round 1's epochs.
    assert [p.params for p in second[:2]] == [{**t.params, EPOCHS: 4} for t in ranked[:2]]
    # The rest are new draws, the leading arm (adam's) taking every other one.
    rest = [p.params for p in second[2:]]
    assert all(p not in [{**t.params, EPOCHS: 4} for t in history] for p in rest)
    assert [p["optimizer"] for p in rest][::2] == ["adam"] * 3


def test_the_share_of_promotions_grows_evenly_to_the_last_round() -> None:
    assert promotion_shares(4, 0.25, 0.75) == [0.0, 0.25, 0.5, 0.75]
    assert promotion_shares(5, 0.2, 0.8) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert promotion_shares(2, 0.25, 0.75) == [0.0, 0.75]  # one round after the first: the last
    assert promotion_shares(1, 0.25, 0.75) == [0.0]
    assert promotion_shares(4, 0.25, 0.25) == [0.0, 0.25, 0.25, 0.25]  # the one share of before


def test_the_last_round_is_mostly_the_round_befores_best_trained_in_full() -> None:
    search = strategy(samples_per_round=[12, 8, 8, 4], drop_margin=100.0)
    history = run(search, 28)
    third = [t for t in history[20:] if t.params[EPOCHS] == 8]
    ranked = sorted(third, key=lambda t: t.value)  # type: ignore[arg-type, return-value]
    last = search.ask(SPACE, history, 4)
    # Three quarters of the last round's 4 trials: round 2's best three, without their epochs
    # (the study's own); round 1 opened with a quarter of its 8, round 2 with half of its 8.
    full = [{k: v for k, v in t.params.items() if k != EPOCHS} for t in ranked[:3]]
    assert [p.params for p in last[:3]] == full
    assert last[3].params not in full
    promoted = [
        sum(1 for t in history[start : start + 8] if {**t.params, EPOCHS: None} in before)
        for start, before in (
            (12, [{**t.params, EPOCHS: None} for t in history[:12]]),
            (20, [{**t.params, EPOCHS: None} for t in history[12:20]]),
        )
    ]
    assert promoted == [2, 4]
    # The state says so, round by round.
    rounds = search.describe(SPACE, history)["rounds"]
    assert [r["promoted"] for r in rounds] == [0, 2, 4, 3]
