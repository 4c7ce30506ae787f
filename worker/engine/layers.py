"""Layers that compute in place on preallocated, feature-major arrays.

Layout: an activation array has shape (units, batch) — one column per sample — and a layer's
input carries an extra last row of ones, so a Dense layer's bias is the last row of its weight
block and z = [W; b]ᵀ [x; 1] is one BLAS call writing straight into the next array. Parameters
and their gradients are views into the model's two flat vectors (`bind`); the optimizers update
those vectors whole. Nothing here allocates once its work arrays exist.
"""

from __future__ import annotations

import numpy as np

from hpsearch.worker.engine.initializers import Initializer

Array = np.ndarray


class Dense:
    """z = Wᵀx + b for each column x, with W of shape (n_in, n_out) and b of shape (n_out,).

    In batch form, with X of shape (n_in, B) and G = dL/dZ of shape (n_out, B):
    dL/dW = X Gᵀ,  dL/db = G 1 (row sums),  dL/dX = W G. The ones row of the input turns the
    first two into the single product [X; 1] Gᵀ.
    """

    def __init__(self, name: str, n_in: int, n_out: int) -> None:
        self.name, self.n_in, self.n_out = name, n_in, n_out
        self.size = (n_in + 1) * n_out

    def bind(self, params: Array, grads: Array) -> None:
        """Take this layer's parameters and gradients as views of two flat blocks of `size`."""
        self.Wb = params.reshape(self.n_in + 1, self.n_out)
        self.W, self.b, self.WbT = self.Wb[: self.n_in], self.Wb[self.n_in], self.Wb.T
        self.dWb = grads.reshape(self.n_in + 1, self.n_out)

    def named(self) -> dict[str, tuple[Array, Array]]:
        """Each parameter's name with its value and gradient views."""
        dW, db = self.dWb[: self.n_in], self.dWb[self.n_in]
        return {f"{self.name}.W": (self.W, dW), f"{self.name}.b": (self.b, db)}

    def init(self, initializer: Initializer, rng: np.random.Generator) -> None:
        self.W[...] = initializer(self.n_in, self.n_out, rng)
        self.b[...] = 0.0

    def forward(self, x: Array, out: Array) -> Array:
        """out = [W; b]ᵀ x for x of shape (n_in + 1, B) whose last row is ones."""
        return np.dot(self.WbT, x, out=out)

    def backward(self, x: Array, grad: Array, grad_in: Array | None) -> None:
        """Write dL/d[W; b] into the gradient block and, unless None, dL/dx into ``grad_in``."""
        np.dot(x, grad.T, out=self.dWb)
        if grad_in is not None:
            np.dot(self.W, grad, out=grad_in)


class BatchNormWork:
    """Work arrays of one batch norm layer for one batch size (x̂ and a scratch array only
    when training; per-unit statistics as (units, 1) columns that broadcast over the batch)."""

    def __init__(self, units: int, batch: int, dtype: np.dtype, train: bool = True) -> None:
        self.batch = batch
        shape = (units, batch) if train else (0, 0)
        self.xhat, self.scratch = np.empty(shape, dtype), np.empty(shape, dtype)
        self.mean_weights = np.full(batch, 1.0 / batch, dtype)  # mean over the batch as a dot
        self.ones = np.ones(batch, dtype)
        self.mean, self.var, self.scale, self.shift = np.empty((4, units, 1), dtype)


class BatchNorm:
    """Ioffe & Szegedy (2015) over the batch, per unit, with learned γ and β.

    Training: μ = mean_b z, σ² = mean_b (z − μ)², x̂ = (z − μ)/√(σ² + ε), y = γ x̂ + β, and the
    running statistics follow r ← m r + (1 − m) s (m = ``model.batch_norm_momentum``; the
    running variance takes the unbiased σ² · B/(B − 1)). Evaluation uses the running
    statistics, so a sample's output does not depend on the rest of its batch.
    Backward: dβ = Σ_b g, dγ = Σ_b g x̂, dz = γ/(B√(σ² + ε)) (B g − dβ − x̂ dγ).
    """

    EPSILON = 1e-5

    def __init__(self, name: str, units: int, momentum: float) -> None:
        self.name, self.units, self.momentum = name, units, momentum
        self.size = 2 * units

    def bind(self, params: Array, grads: Array) -> None:
        n = self.units
        self.gamma, self.beta = params[:n], params[n:]
        self.dgamma, self.dbeta = grads[:n], grads[n:]
        self.gamma_col, self.beta_col = self.gamma[:, None], self.beta[:, None]
        self.dgamma_col, self.dbeta_col = self.dgamma[:, None], self.dbeta[:, None]
        self.running_mean = np.zeros((n, 1), params.dtype)
        self.running_var = np.ones((n, 1), params.dtype)

    def named(self) -> dict[str, tuple[Array, Array]]:
        return {
            f"{self.name}.gamma": (self.gamma, self.dgamma),
            f"{self.name}.beta": (self.beta, self.dbeta),
        }

    def buffers(self) -> dict[str, Array]:
        """The running statistics: state of the layer that no optimizer touches."""
        return {
            f"{self.name}.running_mean": self.running_mean[:, 0],
            f"{self.name}.running_var": self.running_var[:, 0],
        }

    def init(self) -> None:
        self.gamma[...], self.beta[...] = 1.0, 0.0
        self.running_mean[...], self.running_var[...] = 0.0, 1.0

    def forward_train(self, z: Array, out: Array, work: BatchNormWork, update: bool) -> Array:
        """y from batch statistics; ``z`` is left centred. ``update`` moves the running stats."""
        np.dot(z, work.mean_weights, out=work.mean[:, 0])
        np.subtract(z, work.mean, out=z)
        np.multiply(z, z, out=work.xhat)
        np.dot(work.xhat, work.mean_weights, out=work.var[:, 0])
        if update:
            self._track(work)
        np.add(work.var, self.EPSILON, out=work.scale)
        np.sqrt(work.scale, out=work.scale)
        np.divide(1.0, work.scale, out=work.scale)  # 1/√(σ² + ε), kept for backward
        np.multiply(z, work.scale, out=work.xhat)
        np.multiply(work.xhat, self.gamma_col, out=out)
        return np.add(out, self.beta_col, out=out)

    def _track(self, work: BatchNormWork) -> None:
        m, batch = self.momentum, work.batch
        self.running_mean *= m
        self.running_mean += (1.0 - m) * work.mean
        unbiased = batch / (batch - 1) if batch > 1 else 1.0
        self.running_var *= m
        self.running_var += ((1.0 - m) * unbiased) * work.var

    def forward_eval(self, z: Array, out: Array, work: BatchNormWork) -> Array:
        """y = z · γ/√(r_var + ε) + (β − r_mean · γ/√(r_var + ε))."""
        np.add(self.running_var, self.EPSILON, out=work.scale)
        np.sqrt(work.scale, out=work.scale)
        np.divide(self.gamma_col, work.scale, out=work.scale)
        np.multiply(self.running_mean, work.scale, out=work.shift)
        np.subtract(self.beta_col, work.shift, out=work.shift)
        np.multiply(z, work.scale, out=out)
        return np.add(out, work.shift, out=out)

    def backward(self, grad: Array, work: BatchNormWork) -> Array:
        """dL/dz written over ``grad`` (dL/dy); dγ and dβ into the gradient block."""
        np.dot(grad, work.ones, out=self.dbeta)
        np.multiply(grad, work.xhat, out=work.scratch)
        np.dot(work.scratch, work.ones, out=self.dgamma)
        np.multiply(work.xhat, self.dgamma_col, out=work.scratch)
        grad *= work.batch
        grad -= self.dbeta_col
        grad -= work.scratch
        np.multiply(work.scale, self.gamma_col, out=work.shift)
        work.shift *= 1.0 / work.batch
        grad *= work.shift
        return grad


class Dropout:
    """Inverted dropout: in training h = a · mask with mask = [u ≥ p]/(1 − p), u ~ U[0, 1)
    drawn per step from the trial's dropout stream; in evaluation h = a (nothing to undo).
    Backward: dL/da = dL/dh · mask.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def draw(self, mask: Array, rng: np.random.Generator) -> Array:
        """Fill ``mask`` (contiguous) with a fresh scaled keep-mask."""
        rng.random(dtype=mask.dtype, out=mask)
        np.greater_equal(mask, self.rate, out=mask)
        mask *= 1.0 / (1.0 - self.rate)
        return mask

    def forward(self, a: Array, mask: Array, out: Array) -> Array:
        return np.multiply(a, mask, out=out)

    def backward(self, grad: Array, mask: Array) -> Array:
        grad *= mask
        return grad
