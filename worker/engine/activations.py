"""Activation functions as forward/backward pairs.

``forward(z)`` maps a pre-activation to an activation; ``backward(z, grad)`` takes the same
pre-activation and dL/da and returns dL/dz. Keeping only ``z`` means a layer caches one array.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from worker.engine.registry import lookup


class Activation(ABC):
    """An element-wise nonlinearity."""

    @abstractmethod
    def forward(self, z: np.ndarray) -> np.ndarray:
        """a = f(z)."""

    @abstractmethod
    def backward(self, z: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """dL/dz = dL/da · f'(z)."""


class Sigmoid(Activation):
    """σ(z) = 1 / (1 + e^−z); σ'(z) = σ(z)(1 − σ(z))."""

    def forward(self, z: np.ndarray) -> np.ndarray:
        # The tanh form never evaluates exp of a large positive number.
        return 0.5 * (1.0 + np.tanh(0.5 * z))

    def backward(self, z: np.ndarray, grad: np.ndarray) -> np.ndarray:
        s = self.forward(z)
        return grad * s * (1.0 - s)


class Tanh(Activation):
    """tanh(z); tanh'(z) = 1 − tanh²(z)."""

    def forward(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z)

    def backward(self, z: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return grad * (1.0 - np.tanh(z) ** 2)


class ReLU(Activation):
    """max(0, z); derivative 1 for z > 0, else 0."""

    def forward(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(z, 0.0)

    def backward(self, z: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return grad * (z > 0)


class LeakyReLU(Activation):
    """z for z > 0, else αz; derivative 1 or α."""

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = alpha

    def forward(self, z: np.ndarray) -> np.ndarray:
        return np.where(z > 0, z, self.alpha * z)

    def backward(self, z: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return grad * np.where(z > 0, 1.0, self.alpha)


ACTIVATIONS: dict[str, type[Activation]] = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
}


def get_activation(name: str) -> Activation:
    """A new activation by its study-file name (``model.activation``)."""
    return lookup(ACTIVATIONS, name, "model.activation", "activation")()
