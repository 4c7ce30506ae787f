"""Optimizers: hyperparameters in the object, state in a dict, one pure update per step.

``init_state(params)`` builds the state; ``step(params, grads, state)`` returns new parameters
and a new state and mutates neither argument, so every step can be checked by hand. ``g`` is the
gradient, ``η`` the learning rate, ``t`` the step count starting at 1.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np

from worker.engine.config import ConfigError, TrainingConfig
from worker.engine.layers import Params
from worker.engine.registry import lookup

State = dict[str, Any]


def _require(field: str, value: float, ok: bool, requirement: str) -> float:
    if not ok:
        raise ConfigError(f"training.{field}", f"must be {requirement}, got {value!r}")
    return value


def _positive(field: str, value: float) -> float:
    return _require(field, value, math.isfinite(value) and value > 0, "a positive finite number")


def _decay(field: str, value: float) -> float:
    return _require(field, value, 0 <= value < 1, "in [0, 1)")


class Optimizer(ABC):
    """Updates parameters from their gradients.

    ``full_batch`` asks the training loop for the whole training set as one batch.
    """

    full_batch: ClassVar[bool] = False

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = _positive("learning_rate", learning_rate)

    @classmethod
    def from_config(cls, training: TrainingConfig) -> Self:
        """The optimizer with the hyperparameters ``training`` sets."""
        return cls(learning_rate=training.learning_rate)

    def init_state(self, params: Params) -> State:
        """The state before the first step (none by default)."""
        return {}

    @abstractmethod
    def step(self, params: Params, grads: Params, state: State) -> tuple[Params, State]:
        """New parameters and state after one update."""


class SGD(Optimizer):
    """Stochastic / mini-batch gradient descent: w ← w − η g.

    The batch the gradient comes from (1, k or all samples) is ``training.batch_size``.
    """

    def step(self, params: Params, grads: Params, state: State) -> tuple[Params, State]:
        return {k: w - self.learning_rate * grads[k] for k, w in params.items()}, state


class GD(SGD):
    """Batch gradient descent: w ← w − η g, with g always from the whole training set."""

    full_batch = True


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015).

    m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;
    m̂ = m / (1 − β1^t);  v̂ = v / (1 − β2^t);  w ← w − η m̂ / (√v̂ + ε).
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(learning_rate)
        self.beta1 = _decay("beta1", beta1)
        self.beta2 = _decay("beta2", beta2)
        self.epsilon = _positive("epsilon", epsilon)

    @classmethod
    def from_config(cls, training: TrainingConfig) -> Self:
        return cls(training.learning_rate, training.beta1, training.beta2, training.epsilon)

    def init_state(self, params: Params) -> State:
        zeros = {k: np.zeros_like(w) for k, w in params.items()}
        return {"t": 0, "m": zeros, "v": dict(zeros)}

    def step(self, params: Params, grads: Params, state: State) -> tuple[Params, State]:
        t = state["t"] + 1
        b1, b2 = self.beta1, self.beta2
        m = {k: b1 * state["m"][k] + (1 - b1) * g for k, g in grads.items()}
        v = {k: b2 * state["v"][k] + (1 - b2) * g**2 for k, g in grads.items()}
        new = {}
        for k, w in params.items():
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            new[k] = w - self.learning_rate * m_hat / (np.sqrt(v_hat) + self.epsilon)
        return new, {"t": t, "m": m, "v": v}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "gd": GD,
    "sgd": SGD,
    "minibatch": SGD,
    "adam": Adam,
}


def build_optimizer(training: TrainingConfig) -> Optimizer:
    """The optimizer ``training.optimizer`` names, with the hyperparameters ``training`` sets."""
    cls = lookup(OPTIMIZERS, training.optimizer, "training.optimizer", "optimizer")
    return cls.from_config(training)
