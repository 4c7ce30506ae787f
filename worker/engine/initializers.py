"""Weight initialisers: a weight matrix of shape (fan_in, fan_out) drawn from a Generator.

Biases always start at zero; only the zeros initialiser leaves the symmetry between hidden
units unbroken, which is why it is offered at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from worker.engine.registry import lookup


class Initializer(ABC):
    """Draws one weight matrix."""

    @abstractmethod
    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        """A float64 array of shape (fan_in, fan_out)."""


class Zeros(Initializer):
    """W = 0: every hidden unit computes the same thing and gets the same gradient."""

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return np.zeros((fan_in, fan_out))


class Uniform(Initializer):
    """W ~ U(−r, r) with r = scale / √fan_in."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        r = self.scale / np.sqrt(fan_in)
        return rng.uniform(-r, r, size=(fan_in, fan_out))


class Normal(Initializer):
    """W ~ N(0, std²) with a fixed std (0.01 by default), whatever the layer's size."""

    def __init__(self, std: float = 0.01) -> None:
        self.std = std

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, self.std, size=(fan_in, fan_out))


class Xavier(Initializer):
    """Glorot uniform: W ~ U(−r, r) with r = √(6 / (fan_in + fan_out)), for sigmoid and tanh."""

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        r = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-r, r, size=(fan_in, fan_out))


class He(Initializer):
    """He normal: W ~ N(0, 2 / fan_in), for ReLU-like units."""

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


INITIALIZERS: dict[str, type[Initializer]] = {
    "zeros": Zeros,
    "uniform": Uniform,
    "normal": Normal,
    "xavier": Xavier,
    "he": He,
}


def get_initializer(name: str) -> Initializer:
    """A new initialiser by its study-file name (``model.init``)."""
    return lookup(INITIALIZERS, name, "model.init", "initializer")()
