"""Weight initialisers: a weight matrix of shape (fan_in, fan_out) drawn from a Generator.

Biases always start at zero (and batch norm at γ = 1, β = 0); only the zeros initialiser
leaves the symmetry between hidden units unbroken, which is why it is offered at all.
``model.init_scale`` sets r of uniform(−r, r), σ of normal(σ) and the gain of orthogonal/LSUV.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from hpsearch.worker.engine.registry import lookup


class Initializer(ABC):
    """Draws one weight matrix.

    ``data_dependent`` initialisers (LSUV) are finished by the model on a batch of training
    data after every layer has been drawn (`hpsearch.worker.engine.models.Network.lsuv`).
    """

    data_dependent: ClassVar[bool] = False

    def __init__(self, scale: float | None = None) -> None:
        self.scale = scale

    @abstractmethod
    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        """A float64 array of shape (fan_in, fan_out)."""


class Zeros(Initializer):
    """W = 0: every hidden unit computes the same thing and gets the same gradient."""

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return np.zeros((fan_in, fan_out))


class Uniform(Initializer):
    """W ~ U(−r, r); r = ``init_scale``, by default 1/√fan_in (PyTorch's ``Linear``)."""

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        r = self.scale if self.scale is not None else 1.0 / math.sqrt(fan_in)
        return rng.uniform(-r, r, size=(fan_in, fan_out))


class Normal(Initializer):
    """W ~ N(0, σ²) with a fixed σ = ``init_scale`` (0.01 by default), whatever the layer's size."""

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        std = self.scale if self.scale is not None else 0.01
        return rng.normal(0.0, std, size=(fan_in, fan_out))


class Xavier(Initializer):
    """Glorot uniform: W ~ U(−r, r), r = √(6/(fan_in + fan_out)); Var W = 2/(fan_in + fan_out)."""

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        r = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-r, r, size=(fan_in, fan_out))


class He(Initializer):
    """He normal: W ~ N(0, 2 / fan_in), for ReLU-like units."""

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


class Orthogonal(Initializer):
    """Saxe et al. (2014): a (semi-)orthogonal W times a gain (``init_scale``, default 1).

    The Q of a Gaussian matrix's QR decomposition, signs fixed by R's diagonal so that Q is
    uniformly (Haar) distributed. Tall or square: WᵀW = I; wide: WWᵀ = I.
    """

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        tall = fan_in >= fan_out
        gaussian = rng.normal(size=(fan_in, fan_out) if tall else (fan_out, fan_in))
        q, r = np.linalg.qr(gaussian)
        q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
        gain = self.scale if self.scale is not None else 1.0
        return gain * (q if tall else q.T)


class LSUV(Orthogonal):
    """Mishkin & Matas (2016), layer-sequential unit variance: orthogonal, then each layer in
    turn rescaled so that its pre-activation output has variance 1 on a batch of training data.
    """

    data_dependent = True


INITIALIZERS: dict[str, type[Initializer]] = {
    "zeros": Zeros,
    "uniform": Uniform,
    "normal": Normal,
    "xavier": Xavier,
    "he": He,
    "orthogonal": Orthogonal,
    "lsuv": LSUV,
}


def get_initializer(name: str, scale: float | None = None) -> Initializer:
    """A new initialiser by its study-file name (``model.init``) and ``model.init_scale``."""
    return lookup(INITIALIZERS, name, "model.init", "initializer")(scale)
