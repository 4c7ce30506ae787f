"""Optimizers over one flat parameter vector, updating it and their state in place.

``g`` is the gradient, ``η`` the learning rate, ``t`` the step count starting at 1, ``λ`` the
weight decay. ``init_state(w)`` builds the state: a dict of named flat arrays (and scalars,
``t`` among them) that can be read at any point. ``step(w, g, state)`` applies one update and
returns ``(w, state)`` — the *same* objects, changed in place: over tens of thousands of
parameters a step is a handful of whole-vector operations with ``out=`` (Adam's, the longest,
one compiled pass), and nothing is allocated (squares go through ``np.square``, measured twice
as fast as ``np.multiply(g, g)`` on vectors this long). ``g`` may be overwritten too (weight
decay is added to it in place). Every update rule is the one in DESIGN.md, written out in its
class's docstring; tests check the first steps by hand.

Weight decay is L2: ``g ← g + λ w`` before the rule, for every optimizer but AdamW, which
decays the weights apart from the gradient. The learning rate is an attribute the training
loop sets from the schedule at the start of every epoch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np

from hpsearch.worker.engine import kernels
from hpsearch.worker.engine.config import ConfigError, TrainingConfig
from hpsearch.worker.engine.registry import lookup

Array = np.ndarray
State = dict[str, Any]


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

    One compiled pass over the parameters (`kernels.adam_update`; NumPy needs 7 to 10). The
    bias correction goes into two scalars, rearranged, not approximated: with
    c = √(1 − β2^t), η m̂ / (√v̂ + ε) = (η c / (1 − β1^t)) · m / (√v + ε c).
    The state holds DESIGN's m and v as they are.
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
        return {"m": self.beta1, "v": self.beta2}

    def init_state(self, params: Array) -> State:
        return {"t": 0, "m": np.zeros_like(params), "v": np.zeros_like(params)}

    def moments(self, state: State) -> tuple[Array, Array]:
        """DESIGN.md's m and v (copies)."""
        return state["m"].copy(), state["v"].copy()

    def step(self, params: Array, grads: Array, state: State) -> tuple[Array, State]:
        if not (params.ndim == 1 and params.flags.c_contiguous and grads.flags.c_contiguous):
            raise ValueError("Adam updates a contiguous float vector in place")
        t = state["t"] = state["t"] + 1
        beta1, beta2 = self.beta1, self.beta2
        c = math.sqrt(1 - beta2**t)
        scalar = params.dtype.type
        kernels.adam_update()(
            params,
            grads,
            state["m"],
            state["v"],
            *map(scalar, self._decay_terms()),
            scalar(beta1),
            scalar(1 - beta1),
            scalar(beta2),
            scalar(1 - beta2),
            scalar(self.learning_rate * c / (1 - beta1**t)),
            scalar(self.epsilon * c),
        )
        return params, state

    def _decay_terms(self) -> tuple[float, float]:
        """(λ added to the gradient as λ w, factor the weights shrink by): L2 for Adam."""
        return self.weight_decay, 1.0


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019):

    w ← w − η (m̂ / (√v̂ + ε) + λ w), applied as w ← (1 − η λ) w and then Adam's step, whose
    moments see the loss gradient alone.
    """

    def _decay_terms(self) -> tuple[float, float]:
        return 0.0, 1.0 - self.learning_rate * self.weight_decay


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
