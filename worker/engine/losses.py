"""Loss functions of model outputs z and targets t, both feature-major: shape (k, B).

Targets come encoded by `encode_targets`: one-hot columns for cross-entropy (and for mse/rss
on classes), 0/1 for bce, the values themselves for regression. With ℓ_i the loss of sample i:

- ``total(z, t)`` = Σ_i ℓ_i, the batch's summed loss (what evaluation adds up in chunks);
- ``forward(z, t)`` = L, the loss the optimizer descends: the mean (1/B) Σ_i ℓ_i, except rss,
  which is the sum;
- ``backward(z, t)`` = dL/dz;
- ``loss_and_grad(z, t, out)`` returns ``total`` and writes dL/dz into ``out`` (which may be z):
  the fused form the training loop calls, allocation-free once its small work arrays exist.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from hpsearch.worker.engine.registry import lookup

Array = np.ndarray


class Loss(ABC):
    """A loss L(z, t) with its gradient dL/dz."""

    mean: ClassVar[bool] = True  # False: L sums over the batch (rss)

    def __init__(self) -> None:
        self._work: dict[tuple[tuple[int, ...], np.dtype], tuple[Array, ...]] = {}

    def work(self, z: Array) -> tuple[Array, ...]:
        """Arrays made once per batch shape: two work arrays of shape (B,), one shaped like z,
        and two constant arrays shaped like z, filled with `constants` (ufuncs run about
        0.3 us faster on them than on a scalar operand at batch 64)."""
        arrays = self._work.get((z.shape, z.dtype))
        if arrays is None:
            batch = z.shape[1]
            arrays = (np.empty(batch, z.dtype), np.empty(batch, z.dtype), np.empty_like(z))
            arrays += tuple(np.full(z.shape, c, z.dtype) for c in self.constants(z))
            self._work[(z.shape, z.dtype)] = arrays
        return arrays

    def constants(self, z: Array) -> tuple[float, ...]:
        """The values of the constant arrays `work` makes for outputs like ``z``."""
        return ()

    @abstractmethod
    def loss_and_grad(self, z: Array, t: Array, out: Array) -> float:
        """Σ_i ℓ_i, with dL/dz written into ``out``."""

    def total(self, z: Array, t: Array) -> float:
        """Σ_i ℓ_i, leaving ``z`` untouched."""
        return self.loss_and_grad(z, t, np.empty_like(z))

    def forward(self, z: Array, t: Array) -> float:
        """L: the mean of ℓ_i over the batch (the sum for rss)."""
        total = self.total(z, t)
        return total / z.shape[1] if self.mean else total

    def backward(self, z: Array, t: Array) -> Array:
        """dL/dz, a new array."""
        grad = np.empty_like(z)
        self.loss_and_grad(z, t, grad)
        return grad


class MSE(Loss):
    """ℓ_i = ‖z_i − t_i‖², L = (1/B) Σ_i ℓ_i;  dL/dz = 2(z − t)/B."""

    def loss_and_grad(self, z: Array, t: Array, out: Array) -> float:
        residual = np.subtract(z, t, out=out)
        total = float(np.vdot(residual, residual))
        residual *= 2.0 / z.shape[1] if self.mean else 2.0
        return total


class RSS(MSE):
    """The residual sum of squares: L = Σ_i ‖z_i − t_i‖²;  dL/dz = 2(z − t)."""

    mean = False


class BinaryCrossEntropy(Loss):
    """Logistic loss on a logit z with t ∈ {0, 1}: ℓ = −t log σ(z) − (1 − t) log(1 − σ(z)).

    Computed as ℓ = log(1 + e^−|z|) + max(z, 0) − z t, which never exponentiates a positive
    number; dL/dz = (σ(z) − t)/B with σ(z) = ½(1 + tanh(z/2)).
    """

    def loss_and_grad(self, z: Array, t: Array, out: Array) -> float:
        _, _, work = self.work(z)
        np.abs(z, out=work)
        np.negative(work, out=work)
        np.exp(work, out=work)
        total = float(np.log1p(work, out=work).sum())
        total += float(np.maximum(z, 0.0, out=work).sum())
        total -= float(np.multiply(z, t, out=work).sum())
        np.multiply(z, 0.5, out=out)  # out may be z: z is not read after this line
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
        out -= t
        out *= 1.0 / z.shape[1]
        return total


class CrossEntropy(Loss):
    """Softmax cross-entropy (the negative log-likelihood of the classes), stably.

    With m_i = max_k z_ki and s_i = Σ_k e^(z_ki − m_i) (log-sum-exp):
    ℓ_i = log s_i − (z_{y_i,i} − m_i);  dL/dz = (softmax(z) − t)/B.
    """

    def constants(self, z: Array) -> tuple[float, ...]:
        return _EXP_FLOOR[z.dtype.char], 1.0 / z.shape[1]

    def loss_and_grad(self, z: Array, t: Array, out: Array) -> float:
        top, sums, _, floor, inverse_batch = self.work(z)
        np.maximum.reduce(z, axis=0, out=top)
        np.subtract(z, top, out=out)  # out may be z: z is not read after this line
        picked = np.vdot(out, t)  # Σ_i (z_{y_i,i} − m_i)
        # e^x below the smallest normal number is a subnormal, which every later operation
        # would handle dozens of times slower; such a probability is 0 to working precision.
        np.maximum(out, floor, out=out)
        np.exp(out, out=out)
        np.add.reduce(out, axis=0, out=sums)
        np.divide(out, sums, out=out)
        np.subtract(out, t, out=out)
        np.multiply(out, inverse_batch, out=out)
        return float(np.add.reduce(np.log(sums, out=sums)) - picked)


# log of the smallest normal number, plus 1 so that e^floor is comfortably normal.
_EXP_FLOOR = {
    np.dtype(dtype).char: math.log(np.finfo(dtype).tiny) + 1.0 for dtype in (np.float32, np.float64)
}

LOSSES: dict[str, type[Loss]] = {
    "mse": MSE,
    "rss": RSS,
    "bce": BinaryCrossEntropy,
    "cross_entropy": CrossEntropy,
}


def get_loss(name: str) -> Loss:
    """A new loss by its study-file name (``training.loss``)."""
    return lookup(LOSSES, name, "training.loss", "loss")()


def encode_targets(y: np.ndarray, n_outputs: int, task: str, dtype: np.dtype) -> Array:
    """Targets as rows (N, k) matching outputs of width k: one-hot classes when k > 1, the
    class (0/1) or the value itself when k = 1. Transposed, a batch's rows are its t."""
    if task == "classification" and n_outputs > 1:
        onehot = np.zeros((len(y), n_outputs), dtype)
        onehot[np.arange(len(y)), y] = 1.0
        return onehot
    return np.asarray(y, dtype).reshape(-1, 1).copy()
