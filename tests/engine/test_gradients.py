"""Analytic gradients against central finite differences, in float64.

Every layer, activation and loss, and whole models, are differentiated numerically by
perturbing one input or parameter at a time; the engine's backward passes must agree to a
relative error below 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from hpsearch.worker.engine.activations import ACTIVATIONS, get_activation
from hpsearch.worker.engine.config import ConfigError, ModelConfig
from hpsearch.worker.engine.initializers import He
from hpsearch.worker.engine.layers import BatchNorm, BatchNormWork, Dense, Dropout
from hpsearch.worker.engine.losses import (
    LOSSES,
    BinaryCrossEntropy,
    CrossEntropy,
    encode_targets,
    get_loss,
)
from hpsearch.worker.engine.models import build_model

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
    # Finite differences across the kink of (leaky) relu at 0 would measure nothing useful.
    z = rng.normal(size=shape)
    return np.where(np.abs(z) < 0.1, np.sign(z + 1e-12) * (np.abs(z) + 0.2), z)


def with_ones(x: np.ndarray) -> np.ndarray:
    """A feature-major batch with the ones row the engine's Dense layers expect."""
    return np.vstack([x, np.ones((1, x.shape[1]))])


# --- layers -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_backward_matches_finite_differences(name: str) -> None:
    rng = np.random.default_rng(1)
    activation = get_activation(name, leaky_slope=0.1)
    z = away_from_zero(rng, (4, 5))
    upstream = rng.normal(size=z.shape)

    def objective() -> float:
        return float(np.sum(activation.forward(z, np.empty_like(z)) * upstream))

    slope = np.empty_like(z)
    a = activation.forward(z, np.empty_like(z), slope)
    assert np.allclose(a, activation.forward(z, np.empty_like(z)))  # with or without slope
    analytic = activation.backward(upstream.copy(), slope)
    assert relative_error(analytic, numeric_grad(objective, z)) < TOLERANCE


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
        ("tanh", np.tanh),
        ("relu", lambda z: np.where(z > 0, z, 0.0)),
        ("leaky_relu", lambda z: np.where(z > 0, z, 0.1 * z)),
    ],
)
def test_activation_forward_matches_its_definition_in_place(name: str, reference) -> None:
    z = np.linspace(-5, 5, 21).reshape(3, 7)
    expected = reference(z)
    activation = get_activation(name, leaky_slope=0.1)
    out = activation.forward(z, z, np.empty_like(z))  # in place, as the model trains
    assert out is z
    assert np.allclose(z, expected, rtol=1e-12, atol=1e-15)
    z = np.linspace(-5, 5, 21).reshape(3, 7)
    assert np.allclose(activation.forward(z, z), expected, rtol=1e-12, atol=1e-15)


def test_unknown_activation_names_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        get_activation("swish")
    assert caught.value.field == "model.activation"


def bound(layer: Dense | BatchNorm, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Give ``layer`` random float64 parameters; return its (params, grads) blocks."""
    params, grads = rng.normal(size=layer.size), np.zeros(layer.size)
    layer.bind(params, grads)
    return params, grads


def test_dense_backward_matches_finite_differences() -> None:
    rng = np.random.default_rng(2)
    layer = Dense("d", 4, 3)
    params, grads = bound(layer, rng)
    x = with_ones(rng.normal(size=(4, 6)))
    upstream = rng.normal(size=(3, 6))

    def objective() -> float:
        return float(np.sum(layer.forward(x, np.empty((3, 6))) * upstream))

    grad_x = np.empty((4, 6))
    layer.backward(x, upstream, grad_x)
    assert relative_error(grad_x, numeric_grad(objective, x)[:4]) < TOLERANCE
    assert relative_error(grads, numeric_grad(objective, params)) < TOLERANCE


def test_dense_forward_is_x_w_plus_b_and_names_its_views() -> None:
    rng = np.random.default_rng(3)
    layer = Dense("dense0", 4, 3)
    bound(layer, rng)
    X = rng.normal(size=(6, 4))  # samples as rows, the textbook way round
    expected = X @ layer.W + layer.b
    assert np.allclose(layer.forward(with_ones(X.T), np.empty((3, 6))).T, expected)
    assert set(layer.named()) == {"dense0.W", "dense0.b"}
    assert layer.named()["dense0.W"][0].shape == (4, 3)


def batch_norm_reference(z: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = z.mean(axis=1, keepdims=True)
    var = z.var(axis=1, keepdims=True)
    return gamma[:, None] * (z - mean) / np.sqrt(var + BatchNorm.EPSILON) + beta[:, None]


def test_batch_norm_training_forward_and_backward() -> None:
    rng = np.random.default_rng(4)
    layer = BatchNorm("bn", 3, momentum=0.9)
    params, grads = bound(layer, rng)
    z = rng.normal(loc=2.0, scale=3.0, size=(3, 5))
    upstream = rng.normal(size=(3, 5))
    work = BatchNormWork(3, 5, np.dtype(np.float64))

    def forward() -> np.ndarray:
        return layer.forward_train(z.copy(), np.empty((3, 5)), work, update=False)

    assert np.allclose(forward(), batch_norm_reference(z, layer.gamma, layer.beta))

    def objective() -> float:
        return float(np.sum(forward() * upstream))

    forward()
    grad_z = layer.backward(upstream.copy(), work)
    assert relative_error(grad_z, numeric_grad(objective, z)) < TOLERANCE
    assert relative_error(grads, numeric_grad(objective, params)) < TOLERANCE


def test_batch_norm_running_statistics_follow_the_momentum() -> None:
    rng = np.random.default_rng(5)
    layer = BatchNorm("bn", 2, momentum=0.8)
    bound(layer, rng)
    layer.init()
    z = rng.normal(size=(2, 4))
    layer.forward_train(z.copy(), np.empty((2, 4)), BatchNormWork(2, 4, np.dtype(np.float64)), True)
    stats = layer.buffers()
    assert np.allclose(stats["bn.running_mean"], 0.2 * z.mean(axis=1))
    assert np.allclose(stats["bn.running_var"], 0.8 + 0.2 * z.var(axis=1, ddof=1))


def test_dropout_with_a_fixed_mask() -> None:
    rng = np.random.default_rng(6)
    dropout = Dropout(0.25)
    mask = dropout.draw(np.empty((40, 50)), rng)
    assert set(np.unique(mask)) == {0.0, 1 / 0.75}
    assert abs(np.mean(mask == 0) - 0.25) < 0.03
    a = rng.normal(size=(40, 50))
    upstream = rng.normal(size=a.shape)
    out = dropout.forward(a, mask, np.empty_like(a))
    assert np.allclose(out, np.where(mask > 0, a / 0.75, 0.0), rtol=1e-15, atol=0)

    small = a[:3, :4].copy()
    small_mask, small_up = mask[:3, :4].copy(), upstream[:3, :4]

    def objective() -> float:
        return float(np.sum(dropout.forward(small, small_mask, np.empty_like(small)) * small_up))

    analytic = dropout.backward(small_up.copy(), small_mask)
    assert relative_error(analytic, numeric_grad(objective, small)) < TOLERANCE


# --- losses --------------------------------------------------------------------------------


def loss_inputs(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Outputs z (k, B) and targets t as the engine encodes them, for a loss ``name``."""
    if name == "bce":
        return rng.normal(scale=3.0, size=(1, 7)), rng.integers(0, 2, size=(1, 7)).astype(float)
    if name == "cross_entropy":
        labels = rng.integers(0, 4, size=7)
        return rng.normal(scale=3.0, size=(4, 7)), encode_targets(
            labels, 4, "classification", np.float64
        ).T
    return rng.normal(size=(2, 7)), rng.normal(size=(2, 7))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_backward_matches_finite_differences(name: str) -> None:
    rng = np.random.default_rng(7)
    loss = get_loss(name)
    z, t = loss_inputs(name, rng)

    analytic = loss.backward(z, t)
    numeric = numeric_grad(lambda: loss.forward(z, t), z)
    assert relative_error(analytic, numeric) < TOLERANCE
    fused = np.empty_like(z)
    total = loss.loss_and_grad(z, t, fused)
    assert np.allclose(fused, analytic)
    assert total == pytest.approx(loss.forward(z, t) * (z.shape[1] if loss.mean else 1))


def test_losses_match_their_closed_forms() -> None:
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])  # two outputs, three samples
    t = np.array([[0.5, 2.0, 1.0], [1.0, 1.0, 1.0]])
    squares = (0.5**2 + 0 + 0.5**2) + (1 + 4 + 4)
    assert get_loss("rss").forward(z, t) == pytest.approx(squares)
    assert get_loss("mse").forward(z, t) == pytest.approx(squares / 3)

    logit, label = np.array([[2.0, -1.0]]), np.array([[1.0, 0.0]])
    expected = (-np.log(1 / (1 + np.exp(-2.0))) - np.log(1 - 1 / (1 + np.exp(1.0)))) / 2
    assert BinaryCrossEntropy().forward(logit, label) == pytest.approx(expected, rel=1e-12)

    logits = np.array([[1.0, 0.0], [2.0, -1.0], [0.5, 3.0]])  # 3 classes, 2 samples
    onehot = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # labels 1 and 0
    row0 = -np.log(np.exp(2.0) / (np.exp(1.0) + np.exp(2.0) + np.exp(0.5)))
    row1 = -np.log(np.exp(0.0) / (np.exp(0.0) + np.exp(-1.0) + np.exp(3.0)))
    assert CrossEntropy().forward(logits, onehot) == pytest.approx((row0 + row1) / 2, rel=1e-12)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_is_stable_for_huge_logits(dtype) -> None:
    loss = CrossEntropy()
    logits = np.array([[1e4], [-1e4]], dtype)
    right, wrong = np.array([[1.0], [0.0]], dtype), np.array([[0.0], [1.0]], dtype)

    assert loss.forward(logits, right) == pytest.approx(0.0, abs=1e-6)
    assert loss.forward(logits, wrong) == pytest.approx(2e4, rel=1e-6)
    assert np.allclose(loss.backward(logits, right), [[0.0], [0.0]])
    assert np.allclose(loss.backward(logits, wrong), [[1.0], [-1.0]])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_is_stable_for_huge_logits(dtype) -> None:
    loss = BinaryCrossEntropy()
    logits = np.array([[1e4, -1e4]], dtype)

    assert loss.forward(logits, np.array([[1.0, 0.0]], dtype)) == pytest.approx(0.0, abs=1e-6)
    assert loss.forward(logits, np.array([[0.0, 1.0]], dtype)) == pytest.approx(1e4, rel=1e-6)
    assert np.allclose(loss.backward(logits, np.array([[0.0, 1.0]], dtype)), [[0.5, -0.5]])


def test_unknown_loss_names_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        get_loss("hinge")
    assert caught.value.field == "training.loss"


# --- whole models --------------------------------------------------------------------------


def check_model_gradients(model: ModelConfig, n_outputs: int, loss: str, task: str) -> None:
    rng = np.random.default_rng(8)
    net = build_model(model, n_features=3, n_outputs=n_outputs, dtype="float64")
    net.init(He(), rng)
    net.flat += rng.normal(scale=0.1, size=net.flat.shape)  # biases, γ, β away from 0, 1
    X = rng.normal(size=(8, 3))
    if task == "regression":
        y = rng.normal(size=8)
    else:
        y = rng.integers(0, max(n_outputs, 2), size=8)
    objective = get_loss(loss)

    net.loss_and_gradient(X, y, objective, task)
    analytic = net.grad.copy()
    numeric = numeric_grad(lambda: net.loss_and_gradient(X, y, objective, task), net.flat)
    start = 0
    for name, view in net.grads.items():  # per parameter, so a failure names it (views in order)
        index = slice(start, start + view.size)
        if np.linalg.norm(numeric[index]) < 1e-9:  # a bias under batch norm: dL/db is 0
            assert np.allclose(analytic[index], 0.0, atol=1e-9), name
        else:
            assert relative_error(analytic[index], numeric[index]) < TOLERANCE, name
        start += view.size
    assert relative_error(analytic, numeric) < TOLERANCE


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_parameter_gradients(activation: str) -> None:
    model = ModelConfig(type="mlp", hidden=[5, 4], activation=activation, leaky_slope=0.1)
    check_model_gradients(model, 3, "cross_entropy", "classification")


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_mlp_with_batch_norm_parameter_gradients(activation: str) -> None:
    model = ModelConfig(type="mlp", hidden=[5, 4], activation=activation, batch_norm=True)
    check_model_gradients(model, 3, "cross_entropy", "classification")


def test_logistic_regression_gradients() -> None:
    check_model_gradients(ModelConfig(type="logistic"), 1, "bce", "classification")


@pytest.mark.parametrize("loss", ["mse", "rss"])
def test_linear_regression_gradients(loss: str) -> None:
    check_model_gradients(ModelConfig(type="linear"), 1, loss, "regression")


def test_mlp_regression_gradients() -> None:
    model = ModelConfig(type="mlp", hidden=[4], activation="tanh", batch_norm=True)
    check_model_gradients(model, 1, "mse", "regression")


def test_model_names_every_parameter_as_a_view_of_the_flat_vector() -> None:
    model = ModelConfig(type="mlp", hidden=[5, 4], batch_norm=True)
    net = build_model(model, n_features=3, n_outputs=2, dtype="float32")
    assert list(net.params) == [
        "dense0.W", "dense0.b", "bn0.gamma", "bn0.beta",
        "dense1.W", "dense1.b", "bn1.gamma", "bn1.beta",
        "dense2.W", "dense2.b",
    ]  # fmt: skip
    assert (
        net.flat.size
        == sum(v.size for v in net.params.values())
        == 3 * 5 + 5 + 10 + 20 + 4 + 8 + 10
    )
    for name, value in net.params.items():
        assert np.shares_memory(value, net.flat) and value.dtype == np.float32, name
        assert np.shares_memory(net.grads[name], net.grad), name
