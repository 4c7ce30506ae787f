"""Learning-rate schedules: η_e, the learning rate of epoch e (epochs count from 1).

η is ``training.learning_rate`` (for adadelta with a null one, 1); E is ``training.epochs``.
The training loop sets the optimizer's learning rate to η_e before the epoch's first step.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from hpsearch.worker.engine.config import (
    ConfigError,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    StepSchedule,
)
from hpsearch.worker.engine.registry import lookup

ScheduleConfig = ConstantSchedule | StepSchedule | ExponentialSchedule | CosineSchedule


class Schedule(ABC):
    """η_e from the base rate η."""

    def __init__(self, base: float) -> None:
        self.base = base

    @abstractmethod
    def __call__(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (≥ 1)."""


class Constant(Schedule):
    """η_e = η."""

    def __call__(self, epoch: int) -> float:
        return self.base


class Step(Schedule):
    """η_e = η · factor^⌊(e − 1)/every⌋: multiplied by ``factor`` after every ``every`` epochs."""

    def __init__(self, base: float, every: int, factor: float) -> None:
        super().__init__(base)
        self.every, self.factor = every, factor

    def __call__(self, epoch: int) -> float:
        return self.base * self.factor ** ((epoch - 1) // self.every)


class Exponential(Schedule):
    """η_e = η · rate^(e − 1)."""

    def __init__(self, base: float, rate: float) -> None:
        super().__init__(base)
        self.rate = rate

    def __call__(self, epoch: int) -> float:
        return self.base * self.rate ** (epoch - 1)


class Cosine(Schedule):
    """η_e = min_lr + (η − min_lr) · (1 + cos(π (e − 1)/E)) / 2: η at the first epoch, falling
    along a half cosine to reach min_lr just after the last (so the last epoch still learns)."""

    def __init__(self, base: float, min_lr: float, epochs: int) -> None:
        super().__init__(base)
        if not 0 <= min_lr <= base:
            raise ConfigError(
                "training.schedule.min_lr",
                f"must be in [0, learning_rate {base:g}], got {min_lr!r}",
            )
        self.min_lr, self.epochs = min_lr, epochs

    def __call__(self, epoch: int) -> float:
        progress = (epoch - 1) / self.epochs
        return self.min_lr + (self.base - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


def _constant(config: ScheduleConfig, base: float, epochs: int) -> Schedule:
    return Constant(base)


def _step(config: StepSchedule, base: float, epochs: int) -> Schedule:
    return Step(base, config.every, config.factor)


def _exponential(config: ExponentialSchedule, base: float, epochs: int) -> Schedule:
    return Exponential(base, config.rate)


def _cosine(config: CosineSchedule, base: float, epochs: int) -> Schedule:
    return Cosine(base, config.min_lr, epochs)


SCHEDULES = {
    "constant": _constant,
    "step": _step,
    "exponential": _exponential,
    "cosine": _cosine,
}


def build_schedule(config: ScheduleConfig, base: float, epochs: int) -> Schedule:
    """The schedule ``training.schedule`` describes, starting from ``base``."""
    return lookup(SCHEDULES, config.type, "training.schedule.type", "schedule")(
        config, base, epochs
    )
