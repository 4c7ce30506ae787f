"""Optimizers over one flat parameter vector, updating it and their state in place.

``g`` is the gradient, ``η`` the learning rate, ``t`` the step count starting at 1, ``λ`` the
weight decay. ``init_state(w)`` builds the state: a dict of named flat arrays (and scalars,
``t`` among them) that can be read at any point. ``step(w, g, state)`` applies one update and
returns ``(w, state)`` — the *same* objects, changed in place: over tens of thousands of
parameters a step is a handful of whole-vector operations with ``out=`` (or BLAS axpy), and
nothing is allocated (squares go through ``np.square``, measured twice as fast as
``np.multiply(g, g)`` on vectors this long). ``g`` may be overwritten too (weight decay is
added to it in place, and Adam uses it as its work vector). Every update rule is the one in
DESIGN.md, written out in its class's docstring; tests check the first steps by hand.

Weight decay is L2: ``g ← g + λ w`` before the rule, for every optimizer but AdamW, which
decays the weights apart from the gradient. The learning rate is an attribute the training
loop sets from the schedule at the start of every epoch.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np

from worker.engine.config import ConfigError, TrainingConfig
from worker.engine.registry import lookup

Array = np.ndarray
State = dict[str, Any]
Axpy = Callable[..., Array]


def _require(field: str, value: float, ok: bool, requirement: str) -> float:
    if not ok:
        raise ConfigError(f"training.{field}", f"must be {requirement}, got {value!r}")
    return value


def _positive(field: str, value: float) -> float:
    ok = isinstance(value, int | float) and math.isfinite(value) and value > 0
    return _require(field, value, ok, "a positive finite number")


def _non_negative(field: str, value: float) -> float:
    ok = isinstance(value, int | float) and math.isfinite(value) and value >= 0
    return _require(field, value, ok, "a finite number ≥ 0")


def _decay(field: str, value: float) -> float:
    return _require(field, value, isinstance(value, int | float) and 0 <= value < 1, "in [0, 1)")


class Optimizer(ABC):
    """Updates a flat parameter vector from its gradient.

    ``hyperparameters`` names the ``training.*`` fields the constructor takes besides the
    learning rate and weight decay. ``full_batch`` asks the training loop for the whole
    training set as every batch. ``lookahead`` is where the next gradient is to be taken:
    the parameters themselves, except for NAG.
    """

    full_batch: ClassVar[bool] = False
    looks_ahead: ClassVar[bool] = False  # True: gradients are taken at `lookahead`, not w
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    # The learning rate used when ``training.learning_rate`` is null; None: one is required.
    null_learning_rate: ClassVar[float | None] = None

    def __init__(self, learning_rate: float = 0.01, weight_decay: float = 0.0) -> None:
        self.learning_rate = _positive("learning_rate", learning_rate)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self._scratch: dict[tuple[int, np.dtype, int], Array] = {}

    @classmethod
    def from_config(cls, training: TrainingConfig) -> Self:
        """The optimizer with the hyperparameters ``training`` sets."""
        learning_rate = training.learning_rate
        if learning_rate is None:
            learning_rate = cls.null_learning_rate
            if learning_rate is None:
                raise ConfigError(
                    "training.learning_rate", f"{training.optimizer} needs a learning rate"
                )
        extra = {name: getattr(training, name) for name in cls.hyperparameters}
        return cls(learning_rate=learning_rate, weight_decay=training.weight_decay, **extra)

    @property
    def decays(self) -> dict[str, float]:
        """Per state array, the factor by which it shrinks in a step where the gradient is 0."""
        return {}

    def init_state(self, params: Array) -> State:
        """The state before the first step."""
        return {"t": 0}

    def lookahead(self, params: Array, state: State, out: Array) -> Array:
        """The point at which the next gradient is to be evaluated (``out`` may go unused)."""
        return params

    @abstractmethod
    def step(self, params: Array, grads: Array, state: State) -> tuple[Array, State]:
        """One update of ``params`` and ``state``, in place; returns both."""

    def scratch(self, like: Array, which: int = 0) -> Array:
        """A work vector shaped like ``like``, made once."""
        key = (like.size, like.dtype, which)  # a dtype hashes faster than its .str is built
        work = self._scratch.get(key)
        if work is None:
            work = self._scratch[key] = np.empty_like(like)
        return work

    def _with_l2(self, params: Array, grads: Array, at: Array | None = None) -> Array:
        """g + λ w (λ w at ``at`` when the gradient was taken elsewhere), in place on g."""
        if self.weight_decay:
            decay = np.multiply(
                params if at is None else at, self.weight_decay, out=self.scratch(params)
            )
            grads += decay
        return grads

    def _descend(self, params: Array, direction: Array, work: Array | None = None) -> None:
        """w ← w − η d, with η d formed in ``work`` (by default: over ``direction``)."""
        scaled = np.multiply(direction, self.learning_rate, out=direction if work is None else work)
        params -= scaled


class SGD(Optimizer):
    """Gradient descent on a batch: w ← w − η g. The batch the gradient comes from (1, k or
    all samples) is ``training.batch_size``: sgd and minibatch are this same rule."""

    def step(self, params: Array, grads: Array, state: State) -> tuple[Array, State]:
        self._descend(params, self._with_l2(params, grads), self.scratch(params))
        state["t"] += 1
        return params, state


class GD(SGD):
    """Batch gradient descent: w ← w − η g, with g always from the whole training set."""

    full_batch = True


class Momentum(Optimizer):
    """Heavy ball: a ← β a + g;  w ← w − η a  (β = ``training.momentum``, a₀ = 0)."""

    hyperparameters = ("momentum",)

    def __init__(
        self, learning_rate: float = 0.01, weight_decay: float = 0.0, momentum: float = 0.9
    ) -> None:
        super().__init__(learning_rate, weight_decay)
        self.momentum = _decay("momentum", momentum)

    @property
    def decays(self) -> dict[str, float]:
        return {"a": self.momentum}

    def init_state(self, params: Array) -> State:
        return {"t": 0, "a": np.zeros_like(params)}

    def _accumulate(self, grads: Array, state: State) -> None:
        velocity = state["a"]
        velocity *= self.momentum
        velocity += grads

    def step(self, params: Array, grads: Array, state: State) -> tuple[Array, State]:
        self._accumulate(self._with_l2(params, grads), state)
        self._descend(params, state["a"], self.scratch(params))
        state["t"] += 1
        return params, state


class NAG(Momentum):
    """Nesterov: a ← β a + ∇L(w − η β a);  w ← w − η a.

    ``lookahead`` gives the point w − η β a; ``step`` expects ``grads`` taken there (and the
    weight decay term λ(w − η β a) is taken there too).
    """

    looks_ahead = True

    def lookahead(self, params: Array, state: State, out: Array) -> Array:
        np.multiply(state["a"], self.learning_rate * self.momentum, out=out)
        return np.subtract(params, out, out=out)

    def step(self, params: Array, grads: Array, state: State) -> tuple[Array, State]:
        if self.weight_decay:
            point = self.lookahead(params, state, self.scratch(params, 1))
            self._with_l2(params, grads, at=point)
        self._accumulate(grads, state)
        self._descend(params, state["a"], self.scratch(params))
        state["t"] += 1
        return params, state


class Adagrad(Optimizer):
    """G ← G + g²;  w ← w − η g / (√G + ε)."""

    hyperparameters = ("epsilon",)

    def __init__(
        self, learning_rate: float = 0.01, weight_decay: float = 0.0, epsilon: float = 1e-8
    ) -> None:
        super().__init__(learning_rate, weight_decay)
        self.epsilon = _positive("epsilon", epsilon)

    def init_state(self, params: Array) -> State:
        return {"t": 0, "G": np.zeros_like(params)}

    def _accumulate(self, grads: Array, state: State) -> None:
        squares = np.square(grads, out=self.scratch(grads))
        state["G"] += squares

    def step(self, params: Array, grads: Array, state: State) -> tuple[Array, State]:
        g = self._with_l2(params, grads)
        self._accumulate(g, state)
        denominator = np.sqrt(state["G"], out=self.scratch(params))
        denominator += self.epsilon
        self._descend(params, np.divide(g, denominator, out=denominator))
        state["t"] += 1
        return params, state


class RMSProp(Adagrad):
    """G ← γ G + (1 − γ) g²;  w ← w − η g / (√G + ε)  (γ = ``training.gamma``)."""

    hyperparameters = ("gamma", "epsilon")

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float = 0.0,
        gamma: float = 0.9,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(learning_rate, weight_decay, epsilon)
        self.gamma = _decay("gamma", gamma)

    @property
    def decays(self) -> dict[str, float]:
        return {"G": self.gamma}

    def _accumulate(self, grads: Array, state: State) -> None:
        squares = np.square(grads, out=self.scratch(grads))
        squares *= 1.0 - self.gamma
        state["G"] *= self.gamma
        state["G"] += squares


class Adadelta(Optimizer):
    """Zeiler (2012), without a learning rate:

    G ← γ G + (1 − γ) g²;  Δ = −(√(H + ε) / √(G + ε)) g;  H ← γ H + (1 − γ) Δ²;  w ← w + η Δ.

    η only scales the step actually taken (H accumulates the unscaled Δ). With
    ``training.learning_rate: null`` it is 1: textbook Adadelta. A number — including the
    config's default 0.001 — scales Δ, so a study wanting plain Adadelta sets it to null.
    """

    hyperparameters = ("gamma", "epsilon")
    null_learning_rate = 1.0

    def __init__(
        self,
        learning_rate: float = 1.0,
        weight_decay: float = 0.0,
        gamma: float = 0.9,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(learning_rate, weight_decay)
        self.gamma = _decay("gamma", gamma)
        self.epsilon = _positive("epsilon", epsilon)

    @property
    def decays(self) -> dict[str, float]:
        return {"G": self.gamma, "H": self.gamma}

    def init_state(self, params: Array) -> State:
        return {"t": 0, "G": np.zeros_like(params), "H": np.zeros_like(params)}

    def _running(self, average: Array, values: Array, work: Array) -> None:
        """average ← γ average + (1 − γ) values² (``work`` is overwritten)."""
        np.square(values, out=work)
        work *= 1.0 - self.gamma
        average *= self.gamma
        average += work

    def step(self, params: Array, grads: Array, state: State) -> tuple[Array, State]:
        g = self._with_l2(params, grads)
        step, work = self.scratch(params), self.scratch(params, 1)
        self._running(state["G"], g, work)
        np.add(state["H"], self.epsilon, out=step)
        np.sqrt(step, out=step)
        np.add(state["G"], self.epsilon, out=work)
        np.sqrt(work, out=work)
        step /= work
        step *= g  # −Δ
        self._running(state["H"], step, work)
        self._descend(params, step)
        state["t"] += 1
        return params, state


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015):

    m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;
    m̂ = m / (1 − β1^t);  v̂ = v / (1 − β2^t);  w ← w − η m̂ / (√v̂ + ε).

    Rearranged, not approximated, so that a step is 7 passes over the parameters (NumPy alone
    needs 10 for the same arithmetic):

    - the moments are kept without their (1 − β) factors, as sums S = Σ_k β^(t−k) x_k
      (m/(1 − β1) of the gradients, v/(1 − β2) of their squares), and those factors, the bias
      correction and η go into two scalars: with k = √((1 − β2)/(1 − β2^t)),
      w ← w − c1 · S_m / (√S_v + c2),  c1 = η (1 − β1) / ((1 − β1^t) k),  c2 = ε / k;
    - each sum is stored divided by its decay so far, S = s · A with the scalar s = β^(t−t₀),
      so that S ← β S + x is A ← A + x / s: one BLAS axpy instead of a scaling pass and an
      adding one (the √s and s go into c1 and c2). When s falls below `RESCALE_BELOW`, A is
      multiplied back into S, flushed of subnormal entries, and s restarts at 1;
    - the last multiply-and-subtract is an axpy as well.

    The state holds A as ``m_sum`` and ``v_sum`` with their s as ``m_scale`` and ``v_scale``;
    `moments` gives DESIGN's m and v.
    """

    hyperparameters = ("beta1", "beta2", "epsilon")

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float = 0.0,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(learning_rate, weight_decay)
        self.beta1 = _decay("beta1", beta1)
        self.beta2 = _decay("beta2", beta2)
        self.epsilon = _positive("epsilon", epsilon)

    @property
    def decays(self) -> dict[str, float]:
        # Stored divided by their decay, the sums shrink only when rescaled, which flushes
        # them; what the training loop's flush still catches is a g² born subnormal.
        return {"m_sum": 1.0, "v_sum": 1.0}

    def init_state(self, params: Array) -> State:
        return {
            "t": 0,
            "m_sum": np.zeros_like(params),
            "v_sum": np.zeros_like(params),
            "m_scale": 1.0,
            "v_scale": 1.0,
        }

    def moments(self, state: State) -> tuple[Array, Array]:
        """DESIGN.md's m and v (new arrays)."""
        m_factor = (1 - self.beta1) * state["m_scale"]
        v_factor = (1 - self.beta2) * state["v_scale"]
        return m_factor * state["m_sum"], v_factor * state["v_sum"]

    def step(self, params: Array, grads: Array, state: State) -> tuple[Array, State]:
        g = self._decayed(params, grads)
        t = state["t"] = state["t"] + 1
        m_sum, v_sum = state["m_sum"], state["v_sum"]
        beta1, beta2 = self.beta1, self.beta2
        axpy = blas_axpy(params.dtype)
        m_scale = _add_decayed(axpy, m_sum, state["m_scale"] * beta1, g)
        # g is not needed past its square: it becomes the work vector, one array fewer for
        # the cache to hold (measured 1 to 4 us a step faster than a separate scratch vector).
        work = np.square(g, out=g)
        v_scale = _add_decayed(axpy, v_sum, state["v_scale"] * beta2, work)
        state["m_scale"], state["v_scale"] = m_scale, v_scale
        # c1 · S_m / (√S_v + c2) = (c1 m_scale / r) · m_sum / (√v_sum + c2 / r), r = √v_scale
        root = math.sqrt((1 - beta2) / (1 - beta2**t) * v_scale)  # k r
        c1 = self.learning_rate * (1 - beta1) * m_scale / ((1 - beta1**t) * root)
        np.sqrt(v_sum, out=work)
        work += self.epsilon / root
        np.divide(m_sum, work, out=work)
        if axpy(work, params, a=-c1) is not params:
            raise ValueError("Adam updates a contiguous float vector in place")
        return params, state

    def _decayed(self, params: Array, grads: Array) -> Array:
        return self._with_l2(params, grads)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019):

    w ← w − η (m̂ / (√v̂ + ε) + λ w), applied as w ← (1 − η λ) w and then Adam's step, whose
    moments see the loss gradient alone.
    """

    def _decayed(self, params: Array, grads: Array) -> Array:
        if self.weight_decay:
            params *= 1.0 - self.learning_rate * self.weight_decay
        return grads


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "gd": GD,
    "sgd": SGD,
    "minibatch": SGD,
    "momentum": Momentum,
    "nag": NAG,
    "adagrad": Adagrad,
    "adadelta": Adadelta,
    "rmsprop": RMSProp,
    "adam": Adam,
    "adamw": AdamW,
}


def get_optimizer(name: str) -> type[Optimizer]:
    """The optimizer class a study file's name (``training.optimizer``) stands for."""
    return lookup(OPTIMIZERS, name, "training.optimizer", "optimizer")


def build_optimizer(training: TrainingConfig) -> Optimizer:
    """The optimizer ``training.optimizer`` names, with the hyperparameters ``training`` sets."""
    return get_optimizer(training.optimizer).from_config(training)


# Entries below this many times the dtype's smallest normal number are flushed to 0.
FLUSH_MARGIN = 2.0**20


def flush_period(decay: float, longest: int = 1024) -> int:
    """Steps between two flushes of an array shrinking by ``decay`` per step at most, such
    that no entry can fall from above the flush threshold into the subnormal range in between
    (decay^period ≥ 1/FLUSH_MARGIN)."""
    if not 0 < decay < 1:
        return longest
    return max(1, min(longest, int(math.log(FLUSH_MARGIN) / -math.log(decay))))


def flush_subnormals(array: Array) -> None:
    """Set entries of magnitude below FLUSH_MARGIN × the smallest normal number to 0, in place.

    A moment whose gradient stays 0 (an inactive ReLU, a constant input; at batch 1 most of
    them, most steps) decays geometrically into the subnormal range, where every arithmetic
    operation on it runs tens of times slower; NumPy cannot switch the CPU to flush-to-zero,
    so the training loop calls this every `flush_period` steps. Below 10⁻³² (float32) a moment
    or a weight is 0 to working precision: no update it takes part in changes by a
    representable amount.
    """
    small = np.abs(array) < FLUSH_MARGIN * np.finfo(array.dtype).tiny
    if small.any():
        array[small] = 0.0


# A running sum stored divided by its decay (`Adam`) is rescaled once that decay falls below
# this: the stored values are then at most 2²⁰ times the sum, far from overflowing.
RESCALE_BELOW = 2.0**-20


def _add_decayed(axpy: Axpy, stored: Array, scale: float, values: Array) -> float:
    """S ← β S + x for a running sum S kept as ``scale`` × ``stored``: called with ``scale``
    already multiplied by β, adds x / scale to ``stored`` and returns the scale now paired with
    it (1 after a rescale, which also covers β = 0)."""
    if scale < RESCALE_BELOW:
        stored *= scale
        flush_subnormals(stored)
        scale = 1.0
    axpy(values, stored, a=1.0 / scale)
    return scale


@functools.cache
def blas_axpy(dtype: np.dtype) -> Axpy:
    """BLAS ``axpy(x, y, a=)``, y ← a x + y in place, for vectors of ``dtype``: one pass where
    NumPy needs two. SciPy's BLAS loads on first use: it adds about a quarter of a second to a
    process's start (measured), which only Adam's users pay."""
    from scipy.linalg.blas import get_blas_funcs

    return get_blas_funcs("axpy", dtype=dtype)
