"""Initialisers: shapes, variances, orthogonality and LSUV's unit variance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpsearch.worker.engine.config import ConfigError, ModelConfig
from hpsearch.worker.engine.initializers import INITIALIZERS, get_initializer
from hpsearch.worker.engine.models import build_model


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_shape_and_seeded(name: str) -> None:
    first = get_initializer(name)(7, 5, np.random.default_rng(0))
    second = get_initializer(name)(7, 5, np.random.default_rng(0))
    assert first.shape == (7, 5) and first.dtype == np.float64
    assert np.array_equal(first, second)


def test_zeros() -> None:
    assert not get_initializer("zeros")(4, 3, np.random.default_rng(0)).any()


@pytest.mark.parametrize(
    ("name", "variance"),
    [
        ("xavier", 2 / (400 + 300)),
        ("he", 2 / 400),
        ("uniform", (1 / math.sqrt(400)) ** 2 / 3),  # U(−r, r), r = 1/√fan_in
        ("normal", 0.01**2),
    ],
)
def test_variance(name: str, variance: float) -> None:
    weights = get_initializer(name)(400, 300, np.random.default_rng(1))
    assert abs(weights.mean()) < 0.01 * math.sqrt(variance) * 10
    assert weights.var() == pytest.approx(variance, rel=0.03)


def test_init_scale_sets_r_and_sigma() -> None:
    rng = np.random.default_rng(2)
    uniform = get_initializer("uniform", 0.3)(200, 100, rng)
    assert np.abs(uniform).max() <= 0.3 and uniform.var() == pytest.approx(0.09 / 3, rel=0.03)
    normal = get_initializer("normal", 0.2)(200, 100, rng)
    assert normal.std() == pytest.approx(0.2, rel=0.03)


@pytest.mark.parametrize("shape", [(6, 6), (9, 4)])
def test_orthogonal_square_and_tall_have_orthonormal_columns(shape: tuple[int, int]) -> None:
    weights = get_initializer("orthogonal")(*shape, np.random.default_rng(3))
    assert np.allclose(weights.T @ weights, np.eye(shape[1]), atol=1e-12)


def test_orthogonal_wide_has_orthonormal_rows_and_a_gain() -> None:
    weights = get_initializer("orthogonal", 2.0)(3, 8, np.random.default_rng(4))
    assert np.allclose(weights @ weights.T, 4.0 * np.eye(3), atol=1e-12)


def test_unknown_initializer_names_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        get_initializer("kaiming_magic")
    assert caught.value.field == "model.init"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lsuv_gives_unit_pre_activation_variance_on_the_batch(dtype: str) -> None:
    rng = np.random.default_rng(5)
    batch = rng.normal(loc=1.0, scale=4.0, size=(256, 6))
    model = ModelConfig(type="mlp", hidden=[16, 12], activation="relu", init="lsuv")
    net = build_model(model, n_features=6, n_outputs=3, dtype=dtype)
    net.init(get_initializer("lsuv"), rng, sample=batch)

    p = {k: v.astype(np.float64) for k, v in net.params.items()}
    z0 = batch @ p["dense0.W"] + p["dense0.b"]  # recomputed here, layer by layer
    z1 = np.maximum(z0, 0) @ p["dense1.W"] + p["dense1.b"]
    z2 = np.maximum(z1, 0) @ p["dense2.W"] + p["dense2.b"]
    for z in (z0, z1, z2):
        assert z.var() == pytest.approx(1.0, abs=2e-3)
    w1 = p["dense1.W"] / np.linalg.norm(p["dense1.W"][:, 0])
    assert np.allclose(w1.T @ w1, np.eye(12), atol=1e-5)  # still orthogonal, only rescaled


def test_lsuv_without_data_is_an_error() -> None:
    net = build_model(ModelConfig(init="lsuv"), n_features=3, n_outputs=2, dtype="float64")
    with pytest.raises(ValueError):
        net.init(get_initializer("lsuv"), np.random.default_rng(0))
