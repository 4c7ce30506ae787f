"""Preprocessing fitted on the training split only, then applied unchanged to every split.

Fitting on the training rows alone keeps validation and test statistics out of the model, so
their scores stay honest estimates. The steps, in this order:

1. impute: a missing numeric cell takes the training column's mean or median (0 if the column
   has no value at all in training); a missing categorical cell takes the training column's most
   frequent category (ties: the first in sorted order). ``drop`` removes incomplete rows before
   the split (`Features.complete`), so it fills nothing.
2. one-hot: each categorical column becomes one 0/1 column per category seen in training,
   named ``column=value`` and placed after the numeric columns; a category not seen in
   training (in validation or test) is an all-zero row.
3. clip: numeric values beyond mean ± clip·std of the (imputed) training column are set to
   that bound.
4. scale: ``(x − center) / scale`` with the (clipped) training column's statistics; a constant
   column keeps scale 1 so nothing divides by zero.

Clipping and scaling act on the numeric columns only: indicator columns stay exactly 0 or 1,
so an unseen category really is a zero row.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hpsearch.worker.engine.config import ConfigError, PreprocessConfig
from hpsearch.worker.engine.registry import lookup

Stats = tuple[np.ndarray, np.ndarray]

MISSING_CATEGORY = ""
# Wider than this, one-hot encoding would build a matrix too large to train on (an id column).
MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class Features:
    """Feature columns of some rows: numeric (float64, NaN = missing), then categorical (str)."""

    numeric: np.ndarray
    numeric_names: tuple[str, ...]
    categorical: np.ndarray
    categorical_names: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        return self.numeric.shape[0]

    def rows(self, index: np.ndarray) -> Features:
        """These rows only (an index array or a boolean mask)."""
        return Features(
            self.numeric[index], self.numeric_names, self.categorical[index], self.categorical_names
        )

    def complete(self) -> np.ndarray:
        """Boolean mask of the rows with no missing cell."""
        numeric_ok = ~np.isnan(self.numeric).any(axis=1)
        return numeric_ok & ~(self.categorical == MISSING_CATEGORY).any(axis=1)


def numeric_features(X: np.ndarray, names: tuple[str, ...] | None = None) -> Features:
    """Features with numeric columns only, named ``x0, x1, …`` unless ``names`` are given."""
    X = np.asarray(X, dtype=np.float64)
    names = names if names is not None else tuple(f"x{j}" for j in range(X.shape[1]))
    return Features(X, names, np.empty((len(X), 0), dtype=str), ())


@dataclass(frozen=True)
class Preprocessor:
    """Everything learnt from the training split, per numeric and per categorical column.

    ``fill`` / ``category_fill`` are None when nothing is imputed (``impute: drop``);
    ``lower`` / ``upper`` are None without clipping. ``center`` and ``scale`` have one entry per
    numeric column.
    """

    numeric_names: tuple[str, ...]
    fill: np.ndarray | None
    lower: np.ndarray | None
    upper: np.ndarray | None
    center: np.ndarray
    scale: np.ndarray
    categorical_names: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    category_fill: tuple[str, ...] | None

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the output columns: numeric columns, then ``column=value`` indicators."""
        indicators = (
            f"{name}={value}"
            for name, values in zip(self.categorical_names, self.categories, strict=True)
            for value in values
        )
        return (*self.numeric_names, *indicators)

    def transform(self, features: Features) -> np.ndarray:
        """The model's input for these rows: float64, C-contiguous, one column per feature name."""
        X = features.numeric
        if self.fill is not None:
            X = np.where(np.isnan(X), self.fill, X)
        if self.lower is not None:
            X = np.clip(X, self.lower, self.upper)
        X = (X - self.center) / self.scale
        return np.ascontiguousarray(np.hstack([X, self._one_hot(features.categorical)]))

    def _one_hot(self, categorical: np.ndarray) -> np.ndarray:
        if self.category_fill is not None:
            fill = np.array(self.category_fill, dtype=str)
            categorical = np.where(categorical == MISSING_CATEGORY, fill, categorical)
        blocks = [
            (categorical[:, [j]] == np.array(values, dtype=str)).astype(np.float64)
            for j, values in enumerate(self.categories)
        ]
        return np.hstack(blocks) if blocks else np.empty((len(categorical), 0))


def _nonzero(spread: np.ndarray) -> np.ndarray:
    # A constant training column would divide by zero; leaving it unscaled keeps it constant.
    return np.where(spread > 0, spread, 1.0)


def standard_stats(X: np.ndarray) -> Stats:
    """Standardise: center = column mean, scale = column std (population, ddof 0)."""
    return X.mean(axis=0), _nonzero(X.std(axis=0))


def minmax_stats(X: np.ndarray) -> Stats:
    """Min-max to [0, 1]: center = column min, scale = max − min."""
    low = X.min(axis=0)
    return low, _nonzero(X.max(axis=0) - low)


def identity_stats(X: np.ndarray) -> Stats:
    """No scaling: center 0, scale 1."""
    return np.zeros(X.shape[1]), np.ones(X.shape[1])


SCALERS: dict[str, Callable[[np.ndarray], Stats]] = {
    "standard": standard_stats,
    "minmax": minmax_stats,
    "none": identity_stats,
}

# "drop" removes incomplete rows before the split, so it fills nothing here.
IMPUTERS: dict[str, Callable[[np.ndarray], np.ndarray] | None] = {
    "drop": None,
    "mean": lambda X: np.nanmean(X, axis=0),
    "median": lambda X: np.nanmedian(X, axis=0),
}


def _fill_values(impute: str, X_train: np.ndarray) -> np.ndarray | None:
    imputer = lookup(IMPUTERS, impute, "dataset.preprocess.impute", "imputer")
    if imputer is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: filled with 0
        return np.nan_to_num(imputer(X_train), nan=0.0)


def _levels(column: np.ndarray, name: str) -> tuple[tuple[str, ...], str]:
    """A categorical training column's sorted categories and its most frequent one."""
    values, counts = np.unique(column[column != MISSING_CATEGORY], return_counts=True)
    if len(values) > MAX_CATEGORIES:
        raise ConfigError(
            "dataset",
            f"column {name!r} has {len(values)} categories in training; at most "
            f"{MAX_CATEGORIES} can be one-hot encoded",
        )
    mode = str(values[np.argmax(counts)]) if len(values) else MISSING_CATEGORY
    return tuple(str(v) for v in values), mode


def _clip_bounds(clip: float | None, X: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    if clip is None:
        return None, None
    mean, spread = X.mean(axis=0), clip * X.std(axis=0)
    return mean - spread, mean + spread


def _require_one_hot(config: PreprocessConfig, train: Features) -> None:
    if train.categorical_names and not config.one_hot:
        names = ", ".join(repr(name) for name in train.categorical_names)
        raise ConfigError(
            "dataset.preprocess.one_hot",
            f"columns {names} are categorical; they can only be used one-hot encoded (true)",
        )


def fit_preprocessor(config: PreprocessConfig, train: Features) -> Preprocessor:
    """Learn imputation, categories, clipping bounds and scaling from the training rows."""
    _require_one_hot(config, train)
    fill = _fill_values(config.impute, train.numeric)
    X = train.numeric if fill is None else np.where(np.isnan(train.numeric), fill, train.numeric)
    lower, upper = _clip_bounds(config.clip, X)
    if lower is not None:
        X = np.clip(X, lower, upper)
    center, scale = lookup(SCALERS, config.scale, "dataset.preprocess.scale", "scaler")(X)
    levels = [
        _levels(train.categorical[:, j], name) for j, name in enumerate(train.categorical_names)
    ]
    return Preprocessor(
        numeric_names=train.numeric_names,
        fill=fill,
        lower=lower,
        upper=upper,
        center=center,
        scale=scale,
        categorical_names=train.categorical_names,
        categories=tuple(values for values, _ in levels),
        category_fill=None if fill is None else tuple(mode for _, mode in levels),
    )
