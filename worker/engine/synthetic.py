"""Synthetic data sets, generated from a fixed seed.

Each generator first draws its noiseless rows, then adds ``noise`` times standard normal draws
from the same stream. So a set's name, ``n_samples`` and ``noise`` always mean the same rows
(only ``dataset.split.seed`` moves them between splits), and the same ``n_samples`` with
another ``noise`` gives the same points with the noise rescaled.

=========  ==============  =========  =======  ==============================================
name       task            n_samples  noise    rows
=========  ==============  =========  =======  ==============================================
linear     regression      200        0.5      x ~ N(0, I₅); y = x·(1.5, −2, 0.5, 0, 3) + 1 + ε
cubic      regression      200        1.0      x ~ U[−3, 3]; y = 0.5x³ − x² − 2x + 1 + ε
blobs      classification  300        1.0      3 classes around centres on a circle of radius 4
moons      classification  500        0.2      two interleaving half circles
spirals    classification  500        0.2      two interleaved arms of two turns, radius ≤ 3
=========  ==============  =========  =======  ==============================================

ε and the point noise are ``noise`` × N(0, 1); classes take turns (blobs) or halves (moons,
spirals) of the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hpsearch.worker.engine.preprocessing import numeric_features
from hpsearch.worker.engine.tables import Table, Task

SEED = 0
LINEAR_WEIGHTS = np.array([1.5, -2.0, 0.5, 0.0, 3.0])
LINEAR_BIAS = 1.0
CUBIC_COEFFICIENTS = np.array([0.5, -1.0, -2.0, 1.0])  # highest power first, as np.polyval


def _regression(X: np.ndarray, y: np.ndarray) -> Table:
    return Table(numeric_features(X), y, "regression", ())


def _classes(X: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> Table:
    return Table(numeric_features(X), y.astype(np.int64), "classification", names)


def _halves(n_samples: int) -> np.ndarray:
    """Class 0 for the first half of the rows, class 1 for the rest."""
    return np.repeat([0, 1], [n_samples // 2, n_samples - n_samples // 2])


def make_linear(n_samples: int, noise: float, rng: np.random.Generator) -> Table:
    """Five standard normal features; a fixed linear function (one weight is 0) plus noise."""
    X = rng.standard_normal((n_samples, len(LINEAR_WEIGHTS)))
    y = X @ LINEAR_WEIGHTS + LINEAR_BIAS + noise * rng.standard_normal(n_samples)
    return _regression(X, y)


def make_cubic(n_samples: int, noise: float, rng: np.random.Generator) -> Table:
    """One feature in [−3, 3]; a fixed third-degree polynomial of it plus noise."""
    x = rng.uniform(-3.0, 3.0, n_samples)
    y = np.polyval(CUBIC_COEFFICIENTS, x) + noise * rng.standard_normal(n_samples)
    return _regression(x[:, None], y)


def make_blobs(n_samples: int, noise: float, rng: np.random.Generator) -> Table:
    """Three round clusters of standard deviation ``noise`` around fixed centres."""
    angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
    centres = 4.0 * np.column_stack([np.cos(angles), np.sin(angles)])
    y = np.arange(n_samples) % 3
    X = centres[y] + noise * rng.standard_normal((n_samples, 2))
    return _classes(X, y, ("blob_0", "blob_1", "blob_2"))


def make_moons(n_samples: int, noise: float, rng: np.random.Generator) -> Table:
    """Two interleaving half circles (as scikit-learn's ``make_moons``)."""
    y = _halves(n_samples)
    t = np.concatenate([np.linspace(0, np.pi, np.sum(y == k)) for k in (0, 1)])
    outer = np.column_stack([np.cos(t), np.sin(t)])
    inner = np.column_stack([1 - np.cos(t), 0.5 - np.sin(t)])
    X = np.where(y[:, None] == 0, outer, inner) + noise * rng.standard_normal((n_samples, 2))
    return _classes(X, y, ("outer", "inner"))


def make_spirals(n_samples: int, noise: float, rng: np.random.Generator) -> Table:
    """Two arms winding twice around the origin, each the other turned by half a turn."""
    y = _halves(n_samples)
    t = np.concatenate([np.linspace(0, 1, np.sum(y == k)) for k in (0, 1)])
    radius, angle = 0.2 + 2.8 * t, 4 * np.pi * t + np.pi * y
    X = radius[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    X = X + noise * rng.standard_normal((n_samples, 2))
    return _classes(X, y, ("arm_0", "arm_1"))


@dataclass(frozen=True)
class Synthetic:
    """A generator and its defaults for ``dataset.n_samples`` and ``dataset.noise``."""

    make: Callable[[int, float, np.random.Generator], Table]
    task: Task
    n_samples: int
    noise: float

    def generate(self, n_samples: int | None = None, noise: float | None = None) -> Table:
        """The set's rows for this size and noise (its defaults where None)."""
        n_samples = self.n_samples if n_samples is None else n_samples
        noise = self.noise if noise is None else noise
        return self.make(n_samples, noise, np.random.default_rng(SEED))


SYNTHETIC: dict[str, Synthetic] = {
    "linear": Synthetic(make_linear, "regression", 200, 0.5),
    "cubic": Synthetic(make_cubic, "regression", 200, 1.0),
    "blobs": Synthetic(make_blobs, "classification", 300, 1.0),
    "moons": Synthetic(make_moons, "classification", 500, 0.2),
    "spirals": Synthetic(make_spirals, "classification", 500, 0.2),
}
