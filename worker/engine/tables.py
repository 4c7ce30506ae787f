"""Whole tables before splitting: the shipped files, and uploaded CSV and NPZ bytes.

Nothing here unpickles: shipped files are plain CSV, uploaded CSV is parsed with the `csv`
module, and NPZ archives are opened with ``allow_pickle=False`` so an object array is refused.

An uploaded table's target becomes classes or numbers by one rule (`encode_target`): with
``dataset.task: auto`` it is a classification target when its values are not numbers (text,
booleans), or when they are whole numbers with at most `MAX_AUTO_CLASSES` distinct values and
no more distinct values than half the rows; otherwise it is a regression target. Classes are
the target's distinct values, sorted (numerically for numbers), and ``y`` holds their indices.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np

from worker.engine.config import ConfigError
from worker.engine.preprocessing import MISSING_CATEGORY, Features, numeric_features

Task = Literal["classification", "regression"]

DATA_DIR = Path(__file__).parent / "datasets"
# Cells that mean "no value", compared after stripping spaces and lower-casing.
MISSING_CELLS = frozenset({"", "na", "nan", "?"})
MAX_AUTO_CLASSES = 20


@dataclass(frozen=True)
class Upload:
    """An uploaded data file as the worker hands it over: its bytes and their format."""

    content: bytes
    format: Literal["csv", "npz"]


@dataclass(frozen=True)
class Table:
    """A whole data set before splitting: features, the encoded target and what it means.

    ``y`` holds class indices (int64) for classification, numbers (float64) for regression;
    ``class_names[k]`` names class ``k`` (empty for regression).
    """

    features: Features
    y: np.ndarray
    task: Task
    class_names: tuple[str, ...]

    @property
    def X(self) -> np.ndarray:
        """The numeric feature columns."""
        return self.features.numeric

    @property
    def n_rows(self) -> int:
        return len(self.y)

    def rows(self, index: np.ndarray) -> Table:
        """These rows only (an index array or a boolean mask)."""
        return Table(self.features.rows(index), self.y[index], self.task, self.class_names)


# The shipped files carry no column names; these are scikit-learn's for the same tables.
_BC_MEASURES = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave points",
    "symmetry",
    "fractal dimension",
)
FEATURE_NAMES: dict[str, tuple[str, ...]] = {
    "iris": ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"),
    "wine": (
        "alcohol",
        "malic_acid",
        "ash",
        "alcalinity_of_ash",
        "magnesium",
        "total_phenols",
        "flavanoids",
        "nonflavanoid_phenols",
        "proanthocyanins",
        "color_intensity",
        "hue",
        "od280/od315_of_diluted_wines",
        "proline",
    ),
    "breast_cancer": (
        *(f"mean {m}" for m in _BC_MEASURES),
        *(f"{m} error" for m in _BC_MEASURES),
        *(f"worst {m}" for m in _BC_MEASURES),
    ),
    "digits": tuple(f"pixel_{row}_{col}" for row in range(8) for col in range(8)),
}
SHIPPED_FILES = {
    "iris": "iris.csv",
    "wine": "wine.csv",
    "breast_cancer": "breast_cancer.csv",
    "digits": "digits.csv.gz",
}


def _is_numeric_row(fields: list[str]) -> bool:
    try:
        [float(field) for field in fields]
    except ValueError:
        return False
    return True


@cache
def read_shipped(name: str) -> Table:
    """The shipped table ``name``: feature columns then the integer class, one row per line.

    An optional first line ``n_samples,n_features,<class names>`` is checked against the rows;
    without it (scikit-learn's digits file has none) classes are named by their numbers. The
    arrays are read-only because the table is cached and shared.
    """
    path = DATA_DIR / SHIPPED_FILES[name]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        lines = handle.read().splitlines()
    first = lines[0].split(",")
    has_header = not _is_numeric_row(first) or len(first) != len(lines[1].split(","))
    data = np.loadtxt(lines[1:] if has_header else lines, delimiter=",", ndmin=2)
    X, y = data[:, :-1].astype(np.float64), data[:, -1].astype(np.int64)
    if has_header and (int(first[0]), int(first[1])) != X.shape:
        raise ValueError(f"{path.name}: header says {first[0]}×{first[1]}, rows give {X.shape}")
    names = tuple(first[2:]) if has_header else tuple(str(k) for k in range(int(y.max()) + 1))
    X.setflags(write=False)
    y.setflags(write=False)
    return Table(numeric_features(X, FEATURE_NAMES[name]), y, "classification", names)


def read_upload(upload: Upload, target: str | None) -> tuple[Features, np.ndarray]:
    """An upload's feature columns and its raw target column (see `encode_target`)."""
    if upload.format == "csv":
        return read_csv(upload.content, target)
    if upload.format == "npz":
        return read_npz(upload.content)
    raise ConfigError("dataset", f"unknown upload format {upload.format!r}; csv or npz")


# --- CSV -----------------------------------------------------------------------------------


def _csv_rows(content: bytes) -> tuple[list[str], list[list[str]]]:
    """The header and the data rows; blank lines are skipped, every row must fit the header."""
    try:
        text = content.decode("utf-8-sig")
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), strict=True) if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError("dataset", f"unparseable CSV: {exc}") from None
    if not rows:
        raise ConfigError("dataset", "unparseable CSV: no header row")
    header = [name.strip() for name in rows[0]]
    if "" in header or len(set(header)) != len(header):
        raise ConfigError("dataset", "unparseable CSV: every column needs a distinct name")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ConfigError(
                "dataset",
                f"unparseable CSV: row {number} has {len(row)} fields, the header {len(header)}",
            )
    return header, rows[1:]


def _parse_column(cells: list[str], name: str) -> np.ndarray:
    """Numbers (float64, NaN = missing) if every present cell is one, else text ("" = missing)."""
    cells = [cell.strip() for cell in cells]
    present = [cell.lower() not in MISSING_CELLS for cell in cells]
    try:
        numbers = [float(cell) if ok else math.nan for cell, ok in zip(cells, present, strict=True)]
    except ValueError:
        text = [cell if ok else MISSING_CATEGORY for cell, ok in zip(cells, present, strict=True)]
        return np.array(text, dtype=str)
    column = np.array(numbers, dtype=np.float64)
    if np.isinf(column).any():
        raise ConfigError("dataset", f"column {name!r} holds an infinite number")
    return column


def _target_index(header: list[str], target: str | None) -> int:
    columns = ", ".join(repr(name) for name in header)
    if target is None:
        reason = f"an uploaded CSV needs the name of its target column; columns: {columns}"
        raise ConfigError("dataset.target", reason)
    if target not in header:
        raise ConfigError("dataset.target", f"{target!r} is not a column; columns: {columns}")
    return header.index(target)


def read_csv(content: bytes, target: str | None) -> tuple[Features, np.ndarray]:
    """A CSV with a header row: every column but ``target`` is a feature."""
    header, rows = _csv_rows(content)
    target_at = _target_index(header, target)
    cells = [list(column) for column in zip(*rows, strict=True)] or [[] for _ in header]
    parsed = {name: _parse_column(cells[j], name) for j, name in enumerate(header)}
    y = parsed.pop(header[target_at])
    if not parsed:
        raise ConfigError("dataset", "the CSV has no feature column besides the target")
    numeric = {name: col for name, col in parsed.items() if col.dtype == np.float64}
    categorical = {name: col for name, col in parsed.items() if col.dtype != np.float64}
    features = Features(
        _stack(list(numeric.values()), len(rows), np.float64),
        tuple(numeric),
        _stack(list(categorical.values()), len(rows), str),
        tuple(categorical),
    )
    return features, y


def _stack(columns: list[np.ndarray], n_rows: int, dtype: type) -> np.ndarray:
    return np.column_stack(columns) if columns else np.empty((n_rows, 0), dtype=dtype)


# --- NPZ -----------------------------------------------------------------------------------


def _npz_array(archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    if key not in archive.files:
        reason = f"the NPZ has no array {key!r} (it has: {', '.join(archive.files) or 'none'})"
        raise ConfigError("dataset", reason)
    try:
        return archive[key]
    except ValueError:  # numpy refuses object arrays before unpickling anything
        reason = f"NPZ array {key!r} holds Python objects, which are never unpickled"
        raise ConfigError("dataset", reason) from None


def _checked_npz(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if X.ndim == 1:
        X = X[:, None]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if X.ndim != 2 or y.ndim != 1:
        raise ConfigError("dataset", f"NPZ X must be 2-D and y 1-D, got {X.shape} and {y.shape}")
    if X.dtype.kind not in "biuf":
        raise ConfigError("dataset", f"NPZ X must hold numbers, not dtype {X.dtype}")
    if y.dtype.kind not in "biufU":
        raise ConfigError("dataset", f"NPZ y must hold numbers or text, not dtype {y.dtype}")
    if len(X) != len(y):
        raise ConfigError("dataset", f"NPZ X has {len(X)} rows but y has {len(y)}")
    X = X.astype(np.float64)
    if np.isinf(X).any():
        raise ConfigError("dataset", "NPZ X holds an infinite number")
    return X, y


def read_npz(content: bytes) -> tuple[Features, np.ndarray]:
    """An NPZ archive with arrays ``X`` (rows × features) and ``y``; NaN in X is missing.

    An optional 1-D text array ``feature_names`` names X's columns.
    """
    try:
        archive = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise ConfigError("dataset", "not a readable NPZ archive") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ConfigError("dataset", "an NPZ archive of arrays X and y is expected, not one array")
    with archive:
        X, y = _checked_npz(_npz_array(archive, "X"), _npz_array(archive, "y"))
        names = _npz_array(archive, "feature_names") if "feature_names" in archive.files else None
    if names is not None and (names.dtype.kind != "U" or names.shape != (X.shape[1],)):
        raise ConfigError("dataset", "NPZ feature_names must be one text entry per column of X")
    if y.dtype.kind == "U":
        y = np.char.strip(y)
        y = np.where(np.isin(np.char.lower(y), list(MISSING_CELLS)), MISSING_CATEGORY, y)
    features = numeric_features(X, None if names is None else tuple(str(n) for n in names))
    return features, y


# --- The target ----------------------------------------------------------------------------


def target_missing(y: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows whose target is missing (NaN or an empty text cell)."""
    if y.dtype.kind == "f":
        return np.isnan(y)
    if y.dtype.kind == "U":
        return y == MISSING_CATEGORY
    return np.zeros(len(y), dtype=bool)


def _looks_categorical(y: np.ndarray) -> bool:
    """`dataset.task: auto`: text, booleans, or few whole numbers (see the module docstring)."""
    if y.dtype.kind in "bU":
        return True
    distinct = np.unique(y)
    whole = bool(np.all(distinct == np.round(distinct)))
    return whole and len(distinct) <= MAX_AUTO_CLASSES and 2 * len(distinct) <= len(y)


def _class_name(value: object) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def encode_target(y: np.ndarray, task: str, name: str) -> tuple[np.ndarray, Task, tuple[str, ...]]:
    """Class indices and names, or float64 numbers, from a target column with no missing cell.

    ``task`` is ``dataset.task`` (auto, classification or regression); ``name`` says which
    column the target is in errors.
    """
    if task == "regression" or (task == "auto" and not _looks_categorical(y)):
        if y.dtype.kind == "U":
            reason = f"regression needs a numeric target, and {name} holds text such as {y[0]!r}"
            raise ConfigError("dataset.task", reason)
        return y.astype(np.float64), "regression", ()
    classes, indices = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        only = _class_name(classes[0]) if len(classes) else "none"
        reason = f"{name} has a single class ({only}); classification needs at least two"
        raise ConfigError("dataset.target", reason)
    return indices.astype(np.int64), "classification", tuple(_class_name(c) for c in classes)
