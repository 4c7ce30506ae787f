"""Layers as functions of explicit parameters.

A layer owns no arrays: ``forward(params, x)`` reads its entries of the model's parameter dict
and returns its output with a cache; ``backward(params, cache, grad)`` returns dL/dx and the
gradients of its own entries. Parameters, gradients and optimizer state are thus plain dicts
of arrays keyed alike (``"dense0.W"``), which the optimizers update without knowing the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from worker.engine.activations import Activation
from worker.engine.initializers import Initializer

Params = dict[str, np.ndarray]


class Layer(ABC):
    """One differentiable step of a model."""

    def init_params(self, rng: np.random.Generator) -> Params:
        """This layer's initial parameters (none by default)."""
        return {}

    @abstractmethod
    def forward(self, params: Params, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """The output for input ``x`` and what `backward` needs."""

    @abstractmethod
    def backward(self, params: Params, cache: Any, grad: np.ndarray) -> tuple[np.ndarray, Params]:
        """dL/dx and dL/dθ for this layer's parameters θ, given dL/doutput."""


class Dense(Layer):
    """y = x W + b, with W of shape (n_in, n_out).

    dL/dW = xᵀ g,  dL/db = Σ_rows g,  dL/dx = g Wᵀ.
    """

    def __init__(self, name: str, n_in: int, n_out: int, initializer: Initializer) -> None:
        self.name, self.n_in, self.n_out, self.initializer = name, n_in, n_out, initializer
        self.w_key, self.b_key = f"{name}.W", f"{name}.b"

    def init_params(self, rng: np.random.Generator) -> Params:
        weights = self.initializer(self.n_in, self.n_out, rng).astype(np.float64)
        return {self.w_key: weights, self.b_key: np.zeros(self.n_out)}

    def forward(self, params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x @ params[self.w_key] + params[self.b_key], x

    def backward(
        self, params: Params, cache: np.ndarray, grad: np.ndarray
    ) -> tuple[np.ndarray, Params]:
        grads = {self.w_key: cache.T @ grad, self.b_key: grad.sum(axis=0)}
        return grad @ params[self.w_key].T, grads


class ActivationLayer(Layer):
    """a = f(z) element-wise; no parameters."""

    def __init__(self, activation: Activation) -> None:
        self.activation = activation

    def forward(self, params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.activation.forward(x), x

    def backward(
        self, params: Params, cache: np.ndarray, grad: np.ndarray
    ) -> tuple[np.ndarray, Params]:
        return self.activation.backward(cache, grad), {}
