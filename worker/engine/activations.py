"""Activation functions as in-place forward/backward pairs.

The engine keeps activations feature-major: an array of shape (units, batch), one column per
sample. ``forward(z, out, slope)`` writes a = f(z) into ``out`` (which may be ``z`` itself)
and, when training, the local derivative f'(z) into ``slope``; ``backward(grad, slope)`` is
then one multiplication, dL/dz = dL/da · f'(z), over ``grad``. Computing f' while z is at hand
costs the forward pass what it saves the backward one, and lets the forward overwrite z. In
evaluation ``slope`` is None and only f is computed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from hpsearch.worker.engine.registry import lookup

Array = np.ndarray


class Activation(ABC):
    """An element-wise nonlinearity."""

    @abstractmethod
    def forward(self, z: Array, out: Array, slope: Array | None = None) -> Array:
        """a = f(z) into ``out`` (returned); f'(z) into ``slope`` unless it is None."""

    def backward(self, grad: Array, slope: Array) -> Array:
        """dL/dz = dL/da · f'(z), written over ``grad`` (dL/da); returns ``grad``."""
        return np.multiply(grad, slope, out=grad)


class Sigmoid(Activation):
    """σ(z) = 1 / (1 + e^−z) = ½(1 + tanh(z/2));  σ'(z) = σ(z)(1 − σ(z))."""

    def forward(self, z: Array, out: Array, slope: Array | None = None) -> Array:
        # The tanh form never evaluates exp of a large positive number.
        np.multiply(z, 0.5, out=out)
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
        if slope is not None:
            np.subtract(1.0, out, out=slope)
            slope *= out
        return out


class Tanh(Activation):
    """tanh(z);  tanh'(z) = 1 − tanh²(z)."""

    def forward(self, z: Array, out: Array, slope: Array | None = None) -> Array:
        np.tanh(z, out=out)
        if slope is not None:
            np.multiply(out, out, out=slope)
            np.subtract(1.0, slope, out=slope)
        return out


class ReLU(Activation):
    """max(0, z);  derivative 1 for z > 0, else 0.

    Without a slope (evaluation) the maximum is taken against an array of zeros shaped like
    z, a view of one shared zero vector: NumPy's loop over a scalar operand is slower
    (measured at 128×2,000 float32: 29 against 44 us).
    """

    def forward(self, z: Array, out: Array, slope: Array | None = None) -> Array:
        if slope is None:
            return np.maximum(z, _zeros(z.size, z.dtype).reshape(z.shape), out=out)
        np.greater(z, 0.0, out=slope)
        return np.multiply(z, slope, out=out)


class LeakyReLU(Activation):
    """z for z > 0, else αz (0 < α < 1, ``model.leaky_slope``);  derivative 1 or α."""

    def __init__(self, slope: float = 0.01) -> None:
        self.slope = slope

    def forward(self, z: Array, out: Array, slope: Array | None = None) -> Array:
        slope = np.empty_like(z) if slope is None else slope
        np.greater(z, 0.0, out=slope)
        slope *= 1.0 - self.slope
        slope += self.slope
        return np.multiply(z, slope, out=out)


_ZEROS: dict[np.dtype, Array] = {}


def _zeros(size: int, dtype: np.dtype) -> Array:
    """``size`` zeros of ``dtype``, read-only, from a vector grown as needed and shared."""
    zeros = _ZEROS.get(dtype)
    if zeros is None or zeros.size < size:
        zeros = _ZEROS[dtype] = np.zeros(size, dtype)
        zeros.flags.writeable = False
    return zeros[:size]


ACTIVATIONS: dict[str, type[Activation]] = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
}


def get_activation(name: str, leaky_slope: float = 0.01) -> Activation:
    """A new activation by its study-file name (``model.activation``)."""
    cls = lookup(ACTIVATIONS, name, "model.activation", "activation")
    return cls(leaky_slope) if cls is LeakyReLU else cls()
