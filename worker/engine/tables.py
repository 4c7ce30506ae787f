"""Whole tables before splitting: the shipped files, and uploaded CSV and NPZ bytes.

Nothing here unpickles: shipped files are plain CSV, uploaded CSV is parsed with the `csv`
module, and an NPZ's arrays are read from their .npy headers and raw bytes, never with pickle.
An upload is held to ``Upload.max_cells`` before its table is allocated: a CSV's rows ×
columns, an NPZ's declared array sizes (and `CELL_BYTES` per cell in bytes). A parsed CSV costs
about 8 bytes per cell: numbers are float64, text cells point into their column's distinct
values (object arrays), of which there are at most `MAX_CATEGORIES`.

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
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Literal, NoReturn

import numpy as np

from hpsearch.worker.engine.config import ConfigError
from hpsearch.worker.engine.preprocessing import (
    MAX_CATEGORIES,
    MISSING_CATEGORY,
    Features,
    numeric_features,
)

Task = Literal["classification", "regression"]

DATA_DIR = Path(__file__).parent / "datasets"
# Cells that mean "no value", compared after stripping spaces and lower-casing.
MISSING_CELLS = frozenset({"", "na", "nan", "?"})
MAX_AUTO_CLASSES = 20
# A text column is str (NPZ) or object (a CSV's shared strs).
TEXT_KINDS = "UO"


@dataclass(frozen=True)
class Upload:
    """An uploaded data file as the worker hands it over: its bytes, their format, and the
    largest table (rows × columns) it may decode to."""

    content: bytes
    format: Literal["csv", "npz"]
    max_cells: int


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
        return read_csv(upload.content, target, upload.max_cells)
    if upload.format == "npz":
        return read_npz(upload.content, upload.max_cells)
    raise ConfigError("dataset", f"unknown upload format {upload.format!r}; csv or npz")


# --- Limits --------------------------------------------------------------------------------

# Bytes a decoded cell may take on average in an NPZ: a float64's (text arrays may hold wider
# items, within the same total).
CELL_BYTES = 8
_CHUNK = 1 << 20  # NPZ array bytes are copied out of the archive this many at a time


def _require_cells(rows: int, columns: int, max_cells: int, what: str) -> None:
    """Refuse, before anything is allocated, a table over the cell limit."""
    if rows * columns > max_cells:
        reason = f"{what} has {rows} rows × {columns} columns, over the limit of {max_cells} cells"
        raise ConfigError("dataset", reason)


# --- CSV -----------------------------------------------------------------------------------


def _csv_reader(content: bytes) -> Iterator[list[str]]:
    """The non-blank rows, decoded as they are read (never the whole text at once)."""
    text = io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig", newline="")
    try:
        yield from (row for row in csv.reader(text, strict=True) if row)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError("dataset", f"unparseable CSV: {exc}") from None


def _csv_header(rows: Iterator[list[str]]) -> list[str]:
    header = [name.strip() for name in next(rows, [])]
    if not header:
        raise ConfigError("dataset", "unparseable CSV: no header row")
    if "" in header or len(set(header)) != len(header):
        raise ConfigError("dataset", "unparseable CSV: every column needs a distinct name")
    return header


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _csv_shape(content: bytes) -> tuple[list[str], int, list[bool]]:
    """First pass: the header, the number of data rows, and which columns hold only numbers.

    It keeps nothing per row, so the second pass can allocate the table at its final size.
    """
    rows = _csv_reader(content)
    header = _csv_header(rows)
    numeric = [True] * len(header)
    n_rows = 0
    for n_rows, row in enumerate(rows, start=1):  # noqa: B007 (the count is the result)
        if len(row) != len(header):
            raise ConfigError(
                "dataset",
                f"unparseable CSV: row {n_rows + 1} has {len(row)} fields, the header"
                f" {len(header)}",
            )
        for j, cell in enumerate(row):
            if numeric[j]:
                cell = cell.strip()
                numeric[j] = cell.lower() in MISSING_CELLS or _is_number(cell)
    return header, n_rows, numeric


class _TextColumn:
    """A text column as small codes into its distinct values (at most `MAX_CATEGORIES`), so a
    cell costs a few bytes whatever the length of its text."""

    def __init__(self, name: str, n_rows: int) -> None:
        self.name = name
        self.codes = np.empty(n_rows, dtype=np.int16)
        self.values: dict[str, int] = {MISSING_CATEGORY: 0}

    def set(self, i: int, cell: str) -> None:
        cell = cell.strip()
        if cell.lower() in MISSING_CELLS:
            cell = MISSING_CATEGORY
        code = self.values.setdefault(cell, len(self.values))
        if code > MAX_CATEGORIES:
            reason = f"column {self.name!r} has over {MAX_CATEGORIES} distinct text values"
            raise ConfigError("dataset", reason)
        self.codes[i] = code

    def cells(self) -> np.ndarray:
        """The column as an object array: one pointer per cell to a shared str."""
        values = np.empty(len(self.values), dtype=object)
        values[:] = list(self.values)
        return values[self.codes]


def _target_index(header: list[str], target: str | None) -> int:
    columns = ", ".join(repr(name) for name in header)
    if target is None:
        reason = f"an uploaded CSV needs the name of its target column; columns: {columns}"
        raise ConfigError("dataset.target", reason)
    if target not in header:
        raise ConfigError("dataset.target", f"{target!r} is not a column; columns: {columns}")
    return header.index(target)


def read_csv(content: bytes, target: str | None, max_cells: int) -> tuple[Features, np.ndarray]:
    """A CSV with a header row: every column but ``target`` is a feature.

    Two streaming passes: the first finds the shape and each column's kind, the second fills
    a float64 table (numbers; NaN = missing) and per-column codes of text. The parsed table
    costs about 8 bytes per cell, whatever the file holds.
    """
    header, n_rows, numeric = _csv_shape(content)
    target_at = _target_index(header, target)
    if len(header) < 2:
        raise ConfigError("dataset", "the CSV has no feature column besides the target")
    _require_cells(n_rows, len(header), max_cells, "the CSV")
    # Numeric columns in file order, a numeric target last, so features are a view.
    order = [j for j in range(len(header)) if numeric[j] and j != target_at]
    order += [target_at] if numeric[target_at] else []
    numbers = np.empty((n_rows, len(order)), dtype=np.float64)
    slots = {j: k for k, j in enumerate(order)}
    text = {j: _TextColumn(header[j], n_rows) for j in range(len(header)) if not numeric[j]}
    rows = _csv_reader(content)
    next(rows)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            if j in slots:
                cell = cell.strip()
                numbers[i, slots[j]] = math.nan if cell.lower() in MISSING_CELLS else float(cell)
            else:
                text[j].set(i, cell)
    infinite = np.isinf(numbers).any(axis=0)
    if infinite.any():
        name = header[order[int(np.argmax(infinite))]]
        raise ConfigError("dataset", f"column {name!r} holds an infinite number")
    y = numbers[:, -1].copy() if numeric[target_at] else text.pop(target_at).cells()
    categorical = [column.cells() for column in text.values()]
    features = Features(
        numbers[:, : len(order) - numeric[target_at]],
        tuple(header[j] for j in order if j != target_at),
        np.column_stack(categorical) if categorical else np.empty((n_rows, 0), dtype=object),
        tuple(column.name for column in text.values()),
    )
    return features, y


# --- NPZ -----------------------------------------------------------------------------------

# The arrays an NPZ may hold and the dtype kinds each may have: numbers for X, numbers or text
# for y, text for the optional column names. Objects (pickles) and records never qualify.
NPZ_KINDS = {"X": "biuf", "y": "biufU", "feature_names": "U"}
# numpy's savez writes stored members and savez_compressed deflated ones; deflate is inflated
# in bounded steps, while bzip2 and lzma members would be inflated a whole chunk at once.
_NPZ_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# An NPZ's directory holds an entry of ~100 bytes per array: 64 KiB is hundreds of arrays.
_MAX_ZIP_DIRECTORY = 64 * 1024
_ZIP_END_SEARCH = 22 + 65535  # the end record, then a comment of at most 64 KiB


@dataclass
class _NpyMember:
    """One array of the archive, its header read and checked, its data not yet."""

    key: str
    stream: IO[bytes]
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _npz_refuse(key: str, reason: str) -> NoReturn:
    raise ConfigError("dataset", f"NPZ array {key!r} {reason}")


def _npy_member(archive: zipfile.ZipFile, key: str, name: str) -> _NpyMember:
    """The member's .npy header, checked against what X, y or feature_names may be and against
    the member's size in the zip directory, before any of its data is read."""
    info = archive.getinfo(name)
    if info.compress_type not in _NPZ_COMPRESSION:
        _npz_refuse(key, f"uses zip compression method {info.compress_type}; stored or deflated")
    stream = archive.open(info)
    version = np.lib.format.read_magic(stream)
    if version not in ((1, 0), (2, 0)):
        _npz_refuse(key, f"has .npy format version {version}; 1.0 or 2.0 is read")
    read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
    shape, fortran, dtype = read_header(stream)
    if dtype.hasobject or dtype.kind not in NPZ_KINDS[key]:
        _npz_refuse(key, f"has dtype {dtype}, which is not allowed (numbers, or text for y)")
    member = _NpyMember(key, stream, shape, fortran, dtype)
    if member.nbytes != info.file_size - stream.tell():
        declared = f"shape {shape} of {dtype}"
        _npz_refuse(key, f"declares {declared}, which does not fit its {info.file_size} bytes")
    return member


def _npy_data(member: _NpyMember) -> np.ndarray:
    """The member's array, read into one allocation of its declared size.

    The zip member's reader yields at most the size the directory declares, inflating a chunk
    at a time, and checks the CRC the directory declares on the last chunk: data that would
    inflate further is never inflated, and data that does not match is refused.
    """
    flat = np.empty(math.prod(member.shape), dtype=member.dtype)
    view = memoryview(flat.view(np.uint8))
    done = 0
    while done < len(view):
        read = member.stream.readinto(view[done : done + _CHUNK])
        if not read:
            _npz_refuse(member.key, "is shorter than its header declares")
        done += read
    if member.fortran:
        return flat.reshape(member.shape[::-1]).transpose()
    return flat.reshape(member.shape)


def _npz_members(archive: zipfile.ZipFile, max_cells: int) -> dict[str, _NpyMember]:
    """X, y and (if present) feature_names, their headers within the limits."""
    # numpy's own naming: member "X.npy" (or "X") is array X.
    names = {name.removesuffix(".npy"): name for name in archive.namelist()}
    for key in ("X", "y"):
        if key not in names:
            listed = ", ".join(sorted(names)[:10]) or "none"
            raise ConfigError("dataset", f"the NPZ has no array {key!r} (it has: {listed})")
    members = {key: _npy_member(archive, key, names[key]) for key in NPZ_KINDS if key in names}
    cells = sum(math.prod(m.shape) for m in members.values())
    nbytes = sum(m.nbytes for m in members.values())
    if cells > max_cells or nbytes > CELL_BYTES * max_cells:
        reason = (
            f"the NPZ's arrays declare {cells} cells of {nbytes} bytes, over the limit of"
            f" {max_cells} cells ({CELL_BYTES * max_cells} bytes)"
        )
        raise ConfigError("dataset", reason)
    return members


def _require_small_directory(content: bytes) -> None:
    """Refuse an archive whose zip directory is larger than an NPZ's ever is.

    `zipfile` reads the whole directory into objects several times its size; an archive of
    nothing but tiny entries would cost memory out of proportion to its bytes. The directory's
    size is in the end record, found as `zipfile` finds it: the last signature within the
    final 64 KiB.
    """
    end = content.rfind(b"PK\x05\x06", max(0, len(content) - _ZIP_END_SEARCH))
    if end < 0 or end + 22 > len(content):
        raise ConfigError("dataset", "not a readable NPZ archive (no zip end record)")
    (directory_bytes,) = struct.unpack_from("<I", content, end + 12)
    if directory_bytes > _MAX_ZIP_DIRECTORY:
        reason = f"the NPZ's zip directory is {directory_bytes} bytes; at most {_MAX_ZIP_DIRECTORY}"
        raise ConfigError("dataset", reason)


def _npz_arrays(content: bytes, max_cells: int) -> dict[str, np.ndarray]:
    """The archive's X, y and feature_names, each checked before it is allocated."""
    _require_small_directory(content)
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = _npz_members(archive, max_cells)
            return {key: _npy_data(member) for key, member in members.items()}
    except ConfigError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError, zlib.error) as exc:
        # RuntimeError: an encrypted member; ValueError: a malformed .npy header.
        raise ConfigError("dataset", f"not a readable NPZ archive ({str(exc)[:200]})") from None


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
    X = X.astype(np.float64, copy=False)
    if np.isinf(X).any():
        raise ConfigError("dataset", "NPZ X holds an infinite number")
    return X, y


def read_npz(content: bytes, max_cells: int) -> tuple[Features, np.ndarray]:
    """An NPZ archive with arrays ``X`` (rows × features) and ``y``; NaN in X is missing.

    An optional 1-D text array ``feature_names`` names X's columns. Every array's .npy header
    is checked (dtype, and declared size against ``max_cells``) before its data is read.
    """
    arrays = _npz_arrays(content, max_cells)
    X, y = _checked_npz(arrays["X"], arrays["y"])
    names = arrays.get("feature_names")
    if names is not None and names.shape != (X.shape[1],):
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
    if y.dtype.kind in TEXT_KINDS:
        return y == MISSING_CATEGORY
    return np.zeros(len(y), dtype=bool)


def _looks_categorical(y: np.ndarray) -> bool:
    """`dataset.task: auto`: text, booleans, or few whole numbers (see the module docstring)."""
    if y.dtype.kind == "b" or y.dtype.kind in TEXT_KINDS:
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
        if y.dtype.kind in TEXT_KINDS:
            reason = f"regression needs a numeric target, and {name} holds text such as {y[0]!r}"
            raise ConfigError("dataset.task", reason)
        return y.astype(np.float64), "regression", ()
    classes, indices = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        only = _class_name(classes[0]) if len(classes) else "none"
        reason = f"{name} has a single class ({only}); classification needs at least two"
        raise ConfigError("dataset.target", reason)
    return indices.astype(np.int64), "classification", tuple(_class_name(c) for c in classes)
