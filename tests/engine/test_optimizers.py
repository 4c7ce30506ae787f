"""Optimizer steps against DESIGN.md's update rules, written out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.engine.config import ConfigError, TrainingConfig
from worker.engine.optimizers import GD, SGD, Adam, build_optimizer

W0 = [1.0, -2.0, 0.5]
GRADS = [[0.1, -0.2, 0.3], [0.4, 0.0, -0.5], [-0.3, 0.1, 0.2]]


def run_steps(optimizer, n: int = 3) -> list[np.ndarray]:
    params = {"w": np.array(W0)}
    state = optimizer.init_state(params)
    seen = []
    for g in GRADS[:n]:
        params, state = optimizer.step(params, {"w": np.array(g)}, state)
        seen.append(params["w"])
    return seen


def test_sgd_first_three_steps_follow_w_minus_eta_g() -> None:
    # w ← w − η g with η = 0.1
    expected = [
        [1.0 - 0.01, -2.0 + 0.02, 0.5 - 0.03],
        [0.99 - 0.04, -1.98 - 0.0, 0.47 + 0.05],
        [0.95 + 0.03, -1.98 - 0.01, 0.52 - 0.02],
    ]
    for got, want in zip(run_steps(SGD(learning_rate=0.1)), expected, strict=True):
        assert np.allclose(got, want, rtol=0, atol=1e-12)


def adam_by_hand(lr: float, b1: float, b2: float, eps: float) -> list[list[float]]:
    """DESIGN.md's Adam, one weight at a time in plain floats."""
    w, m, v = list(W0), [0.0] * 3, [0.0] * 3
    out = []
    for t, g in enumerate(GRADS, start=1):
        for i in range(3):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            w[i] = w[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(list(w))
    return out


def test_adam_first_three_steps_follow_the_design_formula() -> None:
    optimizer = Adam(learning_rate=0.01, beta1=0.9, beta2=0.999, epsilon=1e-8)
    expected = adam_by_hand(0.01, 0.9, 0.999, 1e-8)
    for got, want in zip(run_steps(optimizer), expected, strict=True):
        assert np.allclose(got, want, rtol=0, atol=1e-12)


def test_adam_bias_correction_makes_the_first_step_eta_times_sign() -> None:
    # At t = 1, m̂ = g and v̂ = g², so the step is η g / (|g| + ε) ≈ η sign(g).
    (w1,) = run_steps(Adam(learning_rate=0.01), n=1)
    assert np.allclose(np.array(W0) - w1, [0.01, -0.01, 0.01], rtol=1e-6)


@pytest.mark.parametrize("optimizer", [SGD(0.1), GD(0.1), Adam(0.01)])
def test_step_mutates_neither_params_nor_state(optimizer) -> None:
    params = {"w": np.array(W0)}
    state = optimizer.init_state(params)
    before = repr(state)
    optimizer.step(params, {"w": np.array(GRADS[0])}, state)
    assert np.array_equal(params["w"], W0)
    assert repr(state) == before


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: SGD(learning_rate=0.0), "training.learning_rate"),
        (lambda: SGD(learning_rate=-1.0), "training.learning_rate"),
        (lambda: SGD(learning_rate=float("nan")), "training.learning_rate"),
        (lambda: Adam(learning_rate=float("inf")), "training.learning_rate"),
        (lambda: Adam(beta1=1.0), "training.beta1"),
        (lambda: Adam(beta2=-0.1), "training.beta2"),
        (lambda: Adam(epsilon=0.0), "training.epsilon"),
    ],
)
def test_constructor_errors_name_the_field(make, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make()
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("name", "cls", "full_batch"),
    [("gd", GD, True), ("sgd", SGD, False), ("minibatch", SGD, False), ("adam", Adam, False)],
)
def test_registry_builds_the_named_optimizer(name: str, cls: type, full_batch: bool) -> None:
    optimizer = build_optimizer(TrainingConfig(optimizer=name, learning_rate=0.5, beta1=0.8))
    assert type(optimizer) is cls
    assert optimizer.full_batch is full_batch
    assert optimizer.learning_rate == 0.5
    if cls is Adam:
        assert optimizer.beta1 == 0.8
