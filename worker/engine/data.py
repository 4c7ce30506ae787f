"""A trial's data: a built-in or uploaded table, split seeded and preprocessed on train only.

`load_splits` is the whole path: the table (`tables`, `synthetic`), rows with a missing target
dropped (and, with ``impute: drop``, rows with any missing cell), the target encoded, the rows
split into train/validation/test by ``dataset.split.seed`` (stratified by class unless
``split.stratify`` is false or the task is regression), and the `Preprocessor` fitted on the
training rows and applied to all three splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# np.unique imports numpy.ma on its first call (about 20 ms): imported with this module instead,
# so that a process that forks its trial processes (hpsearch run, a Celery worker) pays it once
# rather than each of them in its first trial.
import numpy.ma  # noqa: F401

from hpsearch.worker.engine.config import ConfigError, DatasetConfig
from hpsearch.worker.engine.preprocessing import Preprocessor, fit_preprocessor
from hpsearch.worker.engine.registry import lookup
from hpsearch.worker.engine.synthetic import SYNTHETIC
from hpsearch.worker.engine.tables import (
    SHIPPED_FILES,
    Table,
    Task,
    Upload,
    encode_target,
    read_shipped,
    read_upload,
    target_missing,
)

MIN_ROWS = 10
BUILTIN_DATASETS: dict[str, Task] = {
    **dict.fromkeys(SHIPPED_FILES, "classification"),
    **{name: generator.task for name, generator in SYNTHETIC.items()},
}

__all__ = [
    "BUILTIN_DATASETS",
    "Splits",
    "Table",
    "Upload",
    "load_splits",
    "load_table",
    "split_rows",
]


@dataclass(frozen=True)
class Splits:
    """Preprocessed train/validation/test arrays, ready for a model.

    X is float64, C-contiguous, one column per ``feature_names`` entry; y is int64 class indices
    (``class_names[k]`` names class k) for classification, float64 for regression, where
    ``n_classes`` is 0 and ``class_names`` empty. ``preprocessor`` is what was fitted on the
    training rows.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    task: Task = "classification"
    preprocessor: Preprocessor | None = None
    feature_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()

    @property
    def n_features(self) -> int:
        """Columns of X."""
        return self.X_train.shape[1]


# --- The table -----------------------------------------------------------------------------


def _refuse_generator_settings(config: DatasetConfig, what: str) -> None:
    for field, value in (("n_samples", config.n_samples), ("noise", config.noise)):
        if value is not None:
            raise ConfigError(f"dataset.{field}", f"only synthetic sets take it, not {what}")


def _builtin(config: DatasetConfig) -> Table:
    task = lookup(BUILTIN_DATASETS, config.name, "dataset.name", "data set")
    if config.task not in ("auto", task):
        raise ConfigError("dataset.task", f"{config.name!r} is a {task} data set")
    if config.name in SYNTHETIC:
        return SYNTHETIC[config.name].generate(config.n_samples, config.noise)
    _refuse_generator_settings(config, f"the shipped table {config.name!r}")
    return read_shipped(config.name)


def _uploaded(config: DatasetConfig, upload: Upload) -> Table:
    _refuse_generator_settings(config, "an uploaded table")
    features, target = read_upload(upload, config.target)
    keep = ~target_missing(target)
    if config.preprocess.impute == "drop":
        keep &= features.complete()
    _require_rows(int(keep.sum()))
    name = "y" if upload.format == "npz" else repr(config.target)
    if keep.all():  # the usual case: no copy of the whole table
        return Table(features, *encode_target(target, config.task, name))
    y, task, class_names = encode_target(target[keep], config.task, name)
    return Table(features.rows(keep), y, task, class_names)


def _require_rows(n_rows: int) -> None:
    if n_rows < MIN_ROWS:
        reason = f"{n_rows} usable rows (target present, and complete with impute: drop)"
        raise ConfigError("dataset", f"{reason}; at least {MIN_ROWS} are needed")


def load_table(config: DatasetConfig, upload: Upload | None = None) -> Table:
    """The whole data set, before splitting: built-in ``config.name``, or the upload.

    With an upload, ``config.name`` is only a label. Built-in sets ignore ``dataset.target``.
    """
    return _builtin(config) if upload is None else _uploaded(config, upload)


# --- The split -----------------------------------------------------------------------------


def _split_sizes(n: int, validation: float, test: float) -> tuple[int, int]:
    n_val = max(1, round(validation * n))
    n_test = max(1, round(test * n)) if test > 0 else 0
    if n - n_val - n_test < 1:
        raise ConfigError("dataset.split", f"{n} rows are too few for this split")
    return n_val, n_test


def _positions(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row's place in [0, 1), spread evenly within its class.

    Within a class of m rows the places are 0, 1/m, …, (m−1)/m in a random order, so cutting
    all rows sorted by place gives every split the same share of every class (±1 row), and the
    place-0 row of every class lands in the training split, which comes first.
    """
    position = np.empty(len(y))
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        position[rows] = np.arange(len(rows)) / len(rows)
    return position


def split_rows(
    n_rows: int, validation: float, test: float, seed: int, classes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted row indices of the train, validation and test splits.

    Shuffled by ``seed``; stratified when ``classes`` (one class per row) is given.
    """
    rng = np.random.default_rng(seed)
    if classes is None:
        order = rng.permutation(n_rows)
    else:
        position = _positions(classes, rng)
        order = np.lexsort((rng.random(n_rows), position))  # random order between classes
    n_val, n_test = _split_sizes(n_rows, validation, test)
    n_train = n_rows - n_val - n_test
    train, val, test_rows = np.split(order, [n_train, n_train + n_val])
    return np.sort(train), np.sort(val), np.sort(test_rows)


# --- Everything ----------------------------------------------------------------------------


def load_splits(config: DatasetConfig, upload: Upload | None = None) -> Splits:
    """The data set ``config`` names (or ``upload``), split and preprocessed on train only."""
    table = load_table(config, upload)
    _require_rows(table.n_rows)
    split = config.split
    stratify = split.stratify and table.task == "classification"
    train, val, test = split_rows(
        table.n_rows, split.validation, split.test, split.seed, table.y if stratify else None
    )
    pre = fit_preprocessor(config.preprocess, table.features.rows(train))

    def X(rows: np.ndarray) -> np.ndarray:
        return pre.transform(table.features.rows(rows))

    def y(rows: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(table.y[rows])

    return Splits(
        X_train=X(train),
        y_train=y(train),
        X_val=X(val),
        y_val=y(val),
        X_test=X(test),
        y_test=y(test),
        n_classes=len(table.class_names),
        task=table.task,
        preprocessor=pre,
        feature_names=pre.feature_names,
        class_names=table.class_names,
    )


def describe_upload(upload: Upload, target: str | None) -> dict[str, Any]:
    """What a usable upload holds: rows, each column's kind, the task; `ConfigError` (naming
    the field) when it cannot be trained on."""
    table = load_table(DatasetConfig(name="upload", target=target), upload)
    _require_rows(table.n_rows)
    columns = dict.fromkeys(table.features.numeric_names, "numeric")
    columns |= dict.fromkeys(table.features.categorical_names, "categorical")
    columns[target if upload.format == "csv" and target else "y"] = "target"
    return {
        "rows": table.n_rows,
        "columns": columns,
        "task": table.task,
        "classes": list(table.class_names),
    }
