"""Synthetic data sets: fixed rows per name, size and noise; each the shape its docs promise."""

from __future__ import annotations

import numpy as np
import pytest

from hpsearch.worker.engine import load_splits
from hpsearch.worker.engine.config import DatasetConfig
from hpsearch.worker.engine.data import load_table

SYNTHETIC = ["linear", "cubic", "blobs", "moons", "spirals"]


def table(name: str, n_samples: int | None = None, noise: float | None = None):
    return load_table(DatasetConfig(name=name, n_samples=n_samples, noise=noise))


@pytest.mark.parametrize("name", SYNTHETIC)
def test_same_name_size_and_noise_give_the_same_rows(name: str) -> None:
    a, b = table(name, 123, 0.3), table(name, 123, 0.3)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert a.X.shape[0] == len(a.y) == 123


@pytest.mark.parametrize("name", SYNTHETIC)
def test_noise_is_rescaled_standard_normal_noise(name: str) -> None:
    quiet, noisy = table(name, 4000, 0.0), table(name, 4000, 0.5)
    if quiet.task == "regression":
        assert np.array_equal(quiet.X, noisy.X)
        difference = noisy.y - quiet.y
    else:
        assert np.array_equal(quiet.y, noisy.y)
        difference = (noisy.X - quiet.X).ravel()
    assert abs(difference.std() / 0.5 - 1) < 0.05
    assert abs(difference.mean()) < 0.05


@pytest.mark.parametrize("name", SYNTHETIC)
def test_only_the_split_seed_moves_rows_between_splits(name: str) -> None:
    def rows(seed: int) -> np.ndarray:
        config = DatasetConfig(name=name, split={"seed": seed}, preprocess={"scale": "none"})
        s = load_splits(config)
        X = np.vstack([s.X_train, s.X_val, s.X_test])
        return X[np.lexsort(X.T[::-1])]

    assert np.array_equal(rows(1), rows(2))


def test_cubic_is_a_noisy_third_degree_polynomial() -> None:
    clean = table("cubic", 500, 0.0)
    x, y = clean.X[:, 0], clean.y
    assert x.min() >= -3 and x.max() <= 3 and x.max() - x.min() > 5.5
    coefficients = np.polyfit(x, y, 3)
    assert np.allclose(coefficients, [0.5, -1.0, -2.0, 1.0])  # as documented
    assert np.abs(np.polyval(coefficients, x) - y).max() < 1e-9
    quadratic = np.polyval(np.polyfit(x, y, 2), x)
    assert np.var(y - quadratic) > 1.0  # no lower degree fits it

    noisy = table("cubic", 5000, 0.7)
    residual = noisy.y - np.polyval(np.polyfit(noisy.X[:, 0], noisy.y, 3), noisy.X[:, 0])
    assert abs(residual.var() / 0.7**2 - 1) < 0.06


def test_linear_is_a_linear_function_plus_noise() -> None:
    clean = table("linear", 200, 0.0)
    design = np.column_stack([clean.X, np.ones(len(clean.y))])
    solution, *_ = np.linalg.lstsq(design, clean.y)
    assert np.allclose(solution, [1.5, -2.0, 0.5, 0.0, 3.0, 1.0])  # weights then bias

    noisy = table("linear", 5000, 0.4)
    design = np.column_stack([noisy.X, np.ones(len(noisy.y))])
    solution, *_ = np.linalg.lstsq(design, noisy.y)
    assert abs((noisy.y - design @ solution).var() / 0.4**2 - 1) < 0.06


def test_blobs_gather_around_three_separate_centres() -> None:
    blobs = table("blobs", 3000, 0.5)
    centres = np.array([blobs.X[blobs.y == k].mean(axis=0) for k in range(3)])
    assert np.allclose(np.linalg.norm(centres, axis=1), 4.0, atol=0.1)
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert np.allclose(gaps, 4.0 * np.sqrt(3), atol=0.15)
    spread = np.concatenate([blobs.X[blobs.y == k] - centres[k] for k in range(3)]).std()
    assert abs(spread - 0.5) < 0.03


def test_moons_lie_on_two_half_circles() -> None:
    moons = table("moons", 400, 0.0)
    outer, inner = moons.X[moons.y == 0], moons.X[moons.y == 1]
    assert np.allclose(np.linalg.norm(outer, axis=1), 1.0) and (outer[:, 1] >= -1e-12).all()
    assert np.allclose(np.linalg.norm(inner - [1.0, 0.5], axis=1), 1.0)
    assert (inner[:, 1] <= 0.5 + 1e-12).all()


def test_spirals_are_two_arms_turned_by_half_a_turn() -> None:
    spirals = table("spirals", 400, 0.0)
    arm0, arm1 = spirals.X[spirals.y == 0], spirals.X[spirals.y == 1]
    assert np.allclose(arm1, -arm0)
    radius = np.linalg.norm(arm0, axis=1)
    assert np.all(np.diff(radius) > 0) and radius.max() <= 3.0 + 1e-12
    # Two turns: the angle, unwrapped along the arm, grows by 4π.
    angle = np.unwrap(np.arctan2(arm0[:, 1], arm0[:, 0]))
    assert np.isclose(angle[-1] - angle[0], 4 * np.pi)
