"""Preprocessing fitted on the training split only, then applied unchanged to every split.

Fitting on the training rows alone keeps validation and test statistics out of the model, so
their scores stay honest estimates. A fitted `Preprocessor` is column-wise:
missing values are filled, then ``(x − center) / scale``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from worker.engine.config import PreprocessConfig
from worker.engine.registry import lookup

Stats = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Preprocessor:
    """Column statistics of the training split: ``fill`` (None: nothing to fill), center, scale."""

    fill: np.ndarray | None
    center: np.ndarray
    scale: np.ndarray

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Fill missing values, then shift and scale every column."""
        if self.fill is not None:
            X = np.where(np.isnan(X), self.fill, X)
        return (X - self.center) / self.scale


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

# "drop" removes incomplete rows before the split (`drop_missing`), so it fills nothing here.
IMPUTERS: dict[str, Callable[[np.ndarray], np.ndarray] | None] = {
    "drop": None,
    "mean": lambda X: np.nanmean(X, axis=0),
    "median": lambda X: np.nanmedian(X, axis=0),
}


def drop_missing(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of X (and y) with no missing value."""
    keep = ~np.isnan(X).any(axis=1)
    return X[keep], y[keep]


def _fill_values(impute: str, X_train: np.ndarray) -> np.ndarray | None:
    imputer = lookup(IMPUTERS, impute, "dataset.preprocess.impute", "imputer")
    if imputer is None or not np.isnan(X_train).any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: filled with 0
        return np.nan_to_num(imputer(X_train), nan=0.0)


def fit_preprocessor(config: PreprocessConfig, X_train: np.ndarray) -> Preprocessor:
    """Fit the fill values and the scaler ``config`` names on the training split."""
    fill = _fill_values(config.impute, X_train)
    filled = X_train if fill is None else np.where(np.isnan(X_train), fill, X_train)
    center, scale = lookup(SCALERS, config.scale, "dataset.preprocess.scale", "scaler")(filled)
    return Preprocessor(fill, center, scale)
