"""Analytic gradients against central finite differences, in float64."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from worker.engine.activations import ACTIVATIONS, get_activation
from worker.engine.config import ConfigError, ModelConfig
from worker.engine.initializers import He
from worker.engine.layers import Dense
from worker.engine.losses import SoftmaxCrossEntropy
from worker.engine.models import build_model

EPS = 1e-6
TOLERANCE = 1e-6


def numeric_grad(f: Callable[[], float], x: np.ndarray) -> np.ndarray:
    """dF/dx by central differences, perturbing ``x`` in place and restoring it."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + EPS
        plus = f()
        x[index] = saved - EPS
        minus = f()
        x[index] = saved
        grad[index] = (plus - minus) / (2 * EPS)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric), 1e-12)
    return float(np.linalg.norm(analytic - numeric) / scale)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Finite differences across the kink of relu at 0 would measure nothing useful.
    z = rng.normal(size=shape)
    return np.where(np.abs(z) < 0.1, z + np.sign(z) * 0.2 + 0.2 * (z == 0), z)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_backward_matches_finite_differences(name: str) -> None:
    rng = np.random.default_rng(1)
    activation = get_activation(name)
    z = away_from_zero(rng, (4, 5))
    upstream = rng.normal(size=z.shape)

    def objective() -> float:
        return float(np.sum(activation.forward(z) * upstream))

    analytic = activation.backward(z, upstream)
    assert relative_error(analytic, numeric_grad(objective, z)) < TOLERANCE


def test_unknown_activation_names_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        get_activation("swish")
    assert caught.value.field == "model.activation"


def test_dense_backward_matches_finite_differences() -> None:
    rng = np.random.default_rng(2)
    layer = Dense("d", 4, 3, He())
    params = layer.init_params(rng)
    params["d.b"] = rng.normal(size=3)
    x = rng.normal(size=(6, 4))
    upstream = rng.normal(size=(6, 3))

    def objective() -> float:
        return float(np.sum(layer.forward(params, x)[0] * upstream))

    _, cache = layer.forward(params, x)
    grad_x, grads = layer.backward(params, cache, upstream)
    assert params["d.W"].dtype == np.float64
    assert relative_error(grad_x, numeric_grad(objective, x)) < TOLERANCE
    for key in ("d.W", "d.b"):
        assert relative_error(grads[key], numeric_grad(objective, params[key])) < TOLERANCE


def test_cross_entropy_backward_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    loss = SoftmaxCrossEntropy()
    logits = rng.normal(scale=3.0, size=(7, 4))
    y = rng.integers(0, 4, size=7)

    analytic = loss.backward(logits, y)
    numeric = numeric_grad(lambda: loss.forward(logits, y), logits)
    assert relative_error(analytic, numeric) < TOLERANCE


def test_cross_entropy_matches_closed_form_on_small_logits() -> None:
    logits = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = np.array([1, 0])
    # −log(e^{z_y} / Σ e^{z_j}) per row, written out without the log-sum-exp shift.
    row0 = -np.log(np.exp(2.0) / (np.exp(1.0) + np.exp(2.0) + np.exp(0.5)))
    row1 = -np.log(np.exp(0.0) / (np.exp(0.0) + np.exp(-1.0) + np.exp(3.0)))
    assert SoftmaxCrossEntropy().forward(logits, y) == pytest.approx((row0 + row1) / 2, rel=1e-12)


@pytest.mark.filterwarnings("error")
def test_cross_entropy_is_stable_for_huge_logits() -> None:
    loss = SoftmaxCrossEntropy()
    logits = np.array([[1e4, -1e4]])

    right, grad_right = loss.loss_and_grad(logits, np.array([0]))
    wrong, grad_wrong = loss.loss_and_grad(logits, np.array([1]))

    assert right == pytest.approx(0.0, abs=1e-12)
    assert wrong == pytest.approx(2e4, rel=1e-12)
    assert np.allclose(grad_right, [[0.0, 0.0]])
    assert np.allclose(grad_wrong, [[1.0, -1.0]])


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_parameter_gradients_match_finite_differences(activation: str) -> None:
    rng = np.random.default_rng(4)
    config = ModelConfig(type="mlp", hidden=[5, 4], activation=activation, init="he")
    model = build_model(config, n_features=3, n_classes=3)
    params = model.init_params(rng)
    params = {k: v + rng.normal(scale=0.1, size=v.shape) for k, v in params.items()}
    x = rng.normal(size=(8, 3))
    y = rng.integers(0, 3, size=8)
    loss = SoftmaxCrossEntropy()

    logits, caches = model.forward(params, x)
    grads = model.backward(params, caches, loss.backward(logits, y))

    assert set(grads) == set(params) == {f"dense{i}.{p}" for i in range(3) for p in "Wb"}
    for key, value in params.items():
        numeric = numeric_grad(lambda: loss.forward(model.predict(params, x), y), value)
        assert relative_error(grads[key], numeric) < TOLERANCE, key
