"""Built-in data sets and the seeded, stratified train/validation/test split.

Shipped tables are read with numpy from ``datasets/`` (never pickle); synthetic sets are
generated from a fixed seed, so a data set's name always means the same rows and only
``dataset.split.seed`` changes which rows land in which split.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.engine.config import ConfigError, DatasetConfig
from worker.engine.preprocessing import Preprocessor, drop_missing, fit_preprocessor
from worker.engine.registry import lookup

DATA_DIR = Path(__file__).parent / "datasets"


@dataclass(frozen=True)
class Table:
    """A whole data set before splitting: features, integer classes, class names."""

    X: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class Splits:
    """Preprocessed train/validation/test arrays: float64 features, int64 classes."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    task: str = "classification"
    preprocessor: Preprocessor | None = None

    @property
    def n_features(self) -> int:
        """Columns of X."""
        return self.X_train.shape[1]


def _is_numeric_row(fields: list[str]) -> bool:
    try:
        [float(field) for field in fields]
    except ValueError:
        return False
    return True


def read_table(path: Path) -> Table:
    """A CSV (optionally gzipped) of feature columns then the class.

    An optional first line ``n_samples,n_features,<class names>`` is checked against the rows;
    without it (scikit-learn's digits file has none) classes are named by their numbers.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        lines = handle.read().splitlines()
    first = lines[0].split(",")
    has_header = not _is_numeric_row(first) or len(first) != len(lines[1].split(","))
    data = np.loadtxt(lines[1:] if has_header else lines, delimiter=",", ndmin=2)
    X, y = data[:, :-1].astype(np.float64), data[:, -1].astype(np.int64)
    if not has_header:
        return Table(X, y, tuple(str(k) for k in range(int(y.max()) + 1)))
    if (int(first[0]), int(first[1])) != X.shape:
        raise ValueError(f"{path.name}: header says {first[0]}×{first[1]}, rows give {X.shape}")
    return Table(X, y, tuple(first[2:]))


def make_moons(n_samples: int = 500, noise: float = 0.2, seed: int = 0) -> Table:
    """Two interleaving half circles with Gaussian noise (as scikit-learn's ``make_moons``)."""
    n_outer = n_samples // 2
    n_inner = n_samples - n_outer
    t_outer, t_inner = np.linspace(0, np.pi, n_outer), np.linspace(0, np.pi, n_inner)
    outer = np.column_stack([np.cos(t_outer), np.sin(t_outer)])
    inner = np.column_stack([1 - np.cos(t_inner), 0.5 - np.sin(t_inner)])
    noise_rng = np.random.default_rng(seed)
    X = np.vstack([outer, inner]) + noise_rng.normal(0.0, noise, size=(n_samples, 2))
    y = np.repeat(np.array([0, 1], dtype=np.int64), [n_outer, n_inner])
    return Table(X, y, ("outer", "inner"))


def _shipped(filename: str) -> Callable[[], Table]:
    return lambda: read_table(DATA_DIR / filename)


DATASETS: dict[str, Callable[[], Table]] = {
    "iris": _shipped("iris.csv"),
    "digits": _shipped("digits.csv.gz"),
    "wine": _shipped("wine.csv"),
    "breast_cancer": _shipped("breast_cancer.csv"),
    "moons": make_moons,
}


def load_table(name: str) -> Table:
    """The whole built-in data set ``name``."""
    return lookup(DATASETS, name, "dataset.name", "data set")()


def _split_sizes(n: int, validation: float, test: float) -> tuple[int, int]:
    if validation + test >= 1:
        raise ConfigError("dataset.split", "validation + test must leave rows for training")
    n_val = max(1, round(validation * n))
    n_test = max(1, round(test * n)) if test > 0 else 0
    if n - n_val - n_test < 1:
        raise ConfigError("dataset.split", f"{n} rows are too few for this split")
    return n_val, n_test


def stratified_split(
    y: np.ndarray, validation: float, test: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted row indices of the train, validation and test splits.

    Each class's rows get evenly spaced positions in [0, 1) in a random order; cutting all rows
    sorted by position takes the same fraction of every class into each split.
    """
    rng = np.random.default_rng(seed)
    position = np.empty(len(y))
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        position[rows] = (np.arange(len(rows)) + 0.5) / len(rows)
    order = np.lexsort((rng.random(len(y)), position))  # random tie-break between classes
    n_val, n_test = _split_sizes(len(y), validation, test)
    test_rows, val_rows = order[:n_test], order[n_test : n_test + n_val]
    return np.sort(order[n_test + n_val :]), np.sort(val_rows), np.sort(test_rows)


def load_splits(config: DatasetConfig) -> Splits:
    """The data set ``config.name``, split and preprocessed with statistics of the train split."""
    table = load_table(config.name)
    X, y = table.X, table.y
    if config.preprocess.impute == "drop":
        X, y = drop_missing(X, y)
    split = config.split
    train, val, test = stratified_split(y, split.validation, split.test, split.seed)
    pre = fit_preprocessor(config.preprocess, X[train])
    return Splits(
        X_train=pre.transform(X[train]),
        y_train=y[train],
        X_val=pre.transform(X[val]),
        y_val=y[val],
        X_test=pre.transform(X[test]),
        y_test=y[test],
        n_classes=len(table.class_names),
        preprocessor=pre,
    )
