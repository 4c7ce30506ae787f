"""Learning-rate schedules at chosen epochs against their closed forms."""

from __future__ import annotations

import math

import pytest

from hpsearch.worker.engine.config import ConfigError, TrainConfig
from hpsearch.worker.engine.schedules import Constant, Cosine, Exponential, Step, build_schedule


def test_constant() -> None:
    assert [Constant(0.1)(e) for e in (1, 7, 100)] == [0.1, 0.1, 0.1]


def test_step_drops_by_factor_after_every_epochs() -> None:
    schedule = Step(0.1, every=10, factor=0.5)
    expected = {1: 0.1, 10: 0.1, 11: 0.05, 20: 0.05, 21: 0.025, 35: 0.0125}
    assert {e: schedule(e) for e in expected} == pytest.approx(expected, rel=1e-12)


def test_exponential_multiplies_by_rate_per_epoch() -> None:
    schedule = Exponential(0.2, rate=0.9)
    for epoch in (1, 2, 5, 30):
        assert schedule(epoch) == pytest.approx(0.2 * 0.9 ** (epoch - 1), rel=1e-12)


def test_cosine_falls_from_the_base_rate_towards_min_lr() -> None:
    schedule = Cosine(0.1, min_lr=0.01, epochs=20)
    assert schedule(1) == pytest.approx(0.1)
    assert schedule(11) == pytest.approx(0.055)  # halfway: the mean of the two
    assert schedule(21) == pytest.approx(0.01)  # just after the last epoch
    epoch = 6
    closed = 0.01 + 0.09 * (1 + math.cos(math.pi * 5 / 20)) / 2
    assert schedule(epoch) == pytest.approx(closed, rel=1e-12)
    rates = [schedule(e) for e in range(1, 21)]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False)) and rates[-1] > 0.01


def config(schedule: dict, learning_rate: float = 0.1) -> TrainConfig:
    return TrainConfig.parse(
        {
            "dataset": {"name": "iris"},
            "training": {"learning_rate": learning_rate, "epochs": 20, "schedule": schedule},
        }
    )


def test_built_from_the_study_file() -> None:
    training = config({"type": "step", "every": 3, "factor": 0.1}).training
    schedule = build_schedule(training.schedule, 0.1, training.epochs)
    assert isinstance(schedule, Step) and schedule(4) == pytest.approx(0.01)
    training = config({"type": "cosine", "min_lr": 0.001}).training
    schedule = build_schedule(training.schedule, 0.1, training.epochs)
    assert isinstance(schedule, Cosine) and schedule.epochs == 20


def test_cosine_min_lr_above_the_learning_rate_names_the_field() -> None:
    training = config({"type": "cosine", "min_lr": 0.5}).training
    with pytest.raises(ConfigError) as caught:
        build_schedule(training.schedule, 0.1, training.epochs)
    assert caught.value.field == "training.schedule.min_lr"
