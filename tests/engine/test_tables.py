"""Uploaded tables: CSV (header, quotes, categorical columns, missing cells) and NPZ (no pickle)."""

from __future__ import annotations

import csv
import io
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from hpsearch.worker.engine import ConfigError, Upload, load_splits
from hpsearch.worker.engine.config import DatasetConfig
from hpsearch.worker.engine.data import load_table, split_rows

# --- Factories -----------------------------------------------------------------------------


def csv_bytes(header: list[str], rows: list[list[object]]) -> bytes:
    """A CSV written by the stdlib writer, which quotes fields holding commas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def config(target: str | None = "label", **settings: object) -> DatasetConfig:
    return DatasetConfig(name="upload", target=target, **settings)


def csv_upload(header: list[str], rows: list[list[object]]) -> Upload:
    return Upload(csv_bytes(header, rows), "csv", 2**24)


def people(n: int = 40) -> Upload:
    """Numbers, a city with a comma in it, a missing-cell token, and a text target."""
    cities = ["Paris", "Portland, OR", "Rome", "NA"]
    rows = [
        [f"{1.5 * i:.1f}", cities[i % 4], "?" if i % 7 == 0 else i % 5, ["yes", "no"][i % 2]]
        for i in range(n)
    ]
    return csv_upload(["height", "city", "score", "label"], rows)


def error(call, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        call(*args, **kwargs)
    assert str(caught.value).startswith(caught.value.field + ": ")
    return caught.value


# --- CSV -----------------------------------------------------------------------------------


def test_csv_columns_are_numeric_or_categorical_with_quoted_commas() -> None:
    table = load_table(config(), people())
    assert table.features.numeric_names == ("height", "score")
    assert table.features.categorical_names == ("city",)
    assert set(table.features.categorical[:, 0]) == {"Paris", "Portland, OR", "Rome", ""}
    assert np.isnan(table.X[0, 1]) and table.X[1, 1] == 1.0  # "?" is missing
    assert table.task == "classification" and table.class_names == ("no", "yes")
    assert np.array_equal(table.y[:4], [1, 0, 1, 0])


def test_quoted_fields_are_parsed_by_hand_written_csv() -> None:
    content = b'a,"b, with comma",label\n1,"x, y",0\n' + b"2,z,1\n" * 11
    table = load_table(config(), Upload(content, "csv", 2**24))
    assert table.features.categorical_names == ("b, with comma",)
    assert table.features.categorical[0, 0] == "x, y"


def test_csv_splits_one_hot_the_categories_and_name_the_features() -> None:
    splits = load_splits(config(), people())
    assert splits.feature_names == (
        "height",
        "score",
        "city=Paris",
        "city=Portland, OR",
        "city=Rome",
    )
    indicators = np.vstack([splits.X_train, splits.X_val, splits.X_test])[:, 2:]
    assert set(indicators.ravel()) == {0.0, 1.0}
    # Missing cities took the training mode, so every row has exactly one indicator set.
    assert np.array_equal(indicators.sum(axis=1), np.ones(len(indicators)))


@pytest.mark.parametrize("token", ["", "NA", "NaN", "nan", "?", " ? "])
def test_missing_cell_tokens(token: str) -> None:
    rows = [[token if i == 3 else i, i % 2] for i in range(12)]
    table = load_table(config(), csv_upload(["x", "label"], rows))
    assert table.features.numeric_names == ("x",)
    assert np.isnan(table.X[3, 0]) and np.isnan(table.X[:, 0]).sum() == 1


def test_rows_with_a_missing_target_are_dropped() -> None:
    rows = [[i, "" if i < 3 else i % 2] for i in range(15)]
    table = load_table(config(), csv_upload(["x", "label"], rows))
    assert table.n_rows == 12 and np.array_equal(table.X[:, 0], np.arange(3, 15))


def test_impute_drop_removes_incomplete_rows() -> None:
    rows = [[i, "" if i % 4 == 0 else "a", i % 2] for i in range(20)]
    table = load_table(config(preprocess={"impute": "drop"}), csv_upload(["x", "c", "label"], rows))
    assert table.n_rows == 15 and 0.0 not in table.X[:, 0]


@pytest.mark.parametrize("impute", ["mean", "median"])
def test_csv_imputation_uses_training_rows_only(impute: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.exponential(10.0, 60)
    x[::6] = np.nan
    y = np.arange(60) % 2
    rows = [["" if np.isnan(v) else repr(float(v)), label] for v, label in zip(x, y, strict=True)]
    dataset = config(split={"seed": 9}, preprocess={"impute": impute, "scale": "none"})
    splits = load_splits(dataset, csv_upload(["x", "label"], rows))

    train, val, _ = split_rows(60, 0.2, 0.2, 9, classes=y)
    reduce = np.nanmean if impute == "mean" else np.nanmedian
    expected = reduce(x[train])
    assert np.isclose(splits.preprocessor.fill[0], expected)
    assert not np.isclose(expected, reduce(x))  # the whole column would give another value
    assert np.allclose(splits.X_val[:, 0], np.where(np.isnan(x[val]), expected, x[val]))


def test_an_unseen_category_is_an_all_zero_row() -> None:
    y = np.arange(40) % 2
    colour = ["red" if i % 3 else "blue" for i in range(40)]
    train, val, test = split_rows(40, 0.2, 0.2, 1, classes=y)
    rare = int(val[0])
    colour[rare] = "green"  # only in the validation split
    rows = [[i, colour[i], y[i]] for i in range(40)]
    splits = load_splits(config(split={"seed": 1}), csv_upload(["x", "colour", "label"], rows))

    assert splits.feature_names == ("x", "colour=blue", "colour=red")
    assert np.array_equal(splits.X_val[0, 1:], [0.0, 0.0])
    assert (splits.X_val[1:, 1:].sum(axis=1) == 1).all()


def test_integer_targets_with_few_values_are_classes() -> None:
    rows = [[i, [3, 1, 2][i % 3]] for i in range(30)]
    table = load_table(config(), csv_upload(["x", "label"], rows))
    assert table.task == "classification" and table.class_names == ("1", "2", "3")
    assert np.array_equal(table.y[:3], [2, 0, 1])


@pytest.mark.parametrize(
    "values",
    [
        [i * 0.37 for i in range(30)],  # not whole numbers
        list(range(15)),  # whole, at most 20 values, but more than half the rows
        [i % 25 for i in range(60)],  # whole, fewer than half, but more than 20 values
    ],
)
def test_other_numeric_targets_are_regression(values: list[float]) -> None:
    rows = [[i, v] for i, v in enumerate(values)]
    table = load_table(config(), csv_upload(["x", "label"], rows))
    assert table.task == "regression" and table.class_names == ()
    assert table.y.dtype == np.float64 and np.allclose(table.y, values)


def test_task_can_be_forced_both_ways() -> None:
    rows = [[i, i % 2] for i in range(30)]
    upload = csv_upload(["x", "label"], rows)
    assert load_table(config(task="regression"), upload).task == "regression"
    fractional = csv_upload(["x", "label"], [[i, (i % 3) / 2] for i in range(30)])
    forced = load_table(config(task="classification"), fractional)
    assert forced.class_names == ("0", "0.5", "1")


# --- CSV errors ----------------------------------------------------------------------------


def test_target_is_required_for_a_csv() -> None:
    caught = error(load_splits, config(target=None), people())
    assert caught.field == "dataset.target" and "'height'" in caught.reason


def test_target_must_be_a_column() -> None:
    caught = error(load_splits, config(target="weight"), people())
    assert caught.field == "dataset.target" and "'weight'" in caught.reason


def test_a_single_class_target_is_refused() -> None:
    rows = [[i, "same"] for i in range(20)]
    assert error(load_splits, config(), csv_upload(["x", "label"], rows)).field == (
        "dataset.target"
    )


def test_too_few_rows_are_refused() -> None:
    rows = [[i if i < 8 else "", i % 2] for i in range(12)]
    upload = csv_upload(["x", "label"], rows)
    assert load_table(config(), upload).n_rows == 12
    caught = error(load_splits, config(preprocess={"impute": "drop"}), upload)
    assert caught.field == "dataset" and "8" in caught.reason


def test_regression_on_a_text_target_is_refused() -> None:
    assert error(load_splits, config(task="regression"), people()).field == "dataset.task"


def test_categorical_columns_without_one_hot_are_refused() -> None:
    caught = error(load_splits, config(preprocess={"one_hot": False}), people())
    assert caught.field == "dataset.preprocess.one_hot" and "'city'" in caught.reason


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"x,label\n1,0\n2\n",  # a short row
        b'x,label\n"1"2,0\n',  # text after a closing quote
        b"x,x\n1,0\n",  # duplicate column names
        b"x,label\n\xff\xfe,0\n",  # not UTF-8
        b"x,label\ninf,0\n",  # an infinite number
    ],
)
def test_unparseable_csv_is_refused(content: bytes) -> None:
    assert error(load_splits, config(), Upload(content, "csv", 2**24)).field == "dataset"


def test_generator_settings_are_refused_for_an_upload() -> None:
    assert error(load_splits, config(n_samples=100), people()).field == "dataset.n_samples"


# --- NPZ -----------------------------------------------------------------------------------


def test_npz_round_trip() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(50, 3)), np.array(["cat", "dog"] * 25)
    content = npz_bytes(X=X, y=y, feature_names=np.array(["a", "b", "c"]))
    dataset = DatasetConfig(name="my.npz", preprocess={"scale": "none"})
    splits = load_splits(dataset, Upload(content, "npz", 2**24))
    assert splits.feature_names == ("a", "b", "c") and splits.class_names == ("cat", "dog")
    train, val, test = split_rows(50, 0.2, 0.2, 0, classes=(y == "dog").astype(int))
    assert np.array_equal(splits.X_train, X[train]) and np.array_equal(splits.X_test, X[test])
    assert np.array_equal(splits.y_val, (y[val] == "dog").astype(int))


def test_npz_regression_with_missing_values() -> None:
    X = np.arange(40.0).reshape(20, 2)
    X[3, 1] = np.nan
    table = load_table(
        DatasetConfig(name="n"), Upload(npz_bytes(X=X, y=X[:, 0] * 0.1), "npz", 2**24)
    )
    assert table.task == "regression" and np.isnan(table.X[3, 1])
    assert table.features.numeric_names == ("x0", "x1")


UNPICKLED: list[str] = []


def _record(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class Payload:
    """Unpickling it calls `_record`, so the test sees whether anything was unpickled."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return _record, ("unpickled",)


def test_an_object_array_is_refused_without_unpickling() -> None:
    content = npz_bytes(X=np.array([[Payload()]] * 12, dtype=object), y=np.arange(12) % 2)
    UNPICKLED.clear()
    caught = error(load_splits, DatasetConfig(name="evil"), Upload(content, "npz", 2**24))
    assert caught.field == "dataset" and "'X'" in caught.reason
    assert UNPICKLED == []
    # Control: the archive really does run code when unpickled.
    np.load(io.BytesIO(content), allow_pickle=True)["X"]
    assert UNPICKLED


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"X": np.zeros((12, 2))}, "'y'"),
        ({"features": np.zeros((12, 2)), "y": np.zeros(12)}, "'X'"),
        ({"X": np.zeros((12, 2)), "y": np.zeros(11)}, "12 rows"),
        ({"X": np.full((12, 2), "a"), "y": np.arange(12) % 2}, "numbers"),
        ({"X": np.zeros((12, 2)), "y": np.zeros(12, dtype=complex)}, "complex"),
    ],
)
def test_bad_npz_is_refused(arrays: dict[str, np.ndarray], words: str) -> None:
    caught = error(load_splits, DatasetConfig(name="n"), Upload(npz_bytes(**arrays), "npz", 2**24))
    assert caught.field == "dataset" and words in caught.reason


def test_bytes_that_are_no_npz_are_refused() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    for content in (b"not a zip", buffer.getvalue()):
        assert error(load_splits, DatasetConfig(name="n"), Upload(content, "npz", 2**24)).field == (
            "dataset"
        )


# --- Limits --------------------------------------------------------------------------------


def test_a_table_over_the_cell_limit_is_refused_before_it_is_built() -> None:
    upload = people(40)  # 40 rows × 4 columns
    assert load_table(config(), Upload(upload.content, "csv", 160)).n_rows == 40
    caught = error(load_table, config(), Upload(upload.content, "csv", 159))
    assert "40 rows × 4 columns, over the limit of 159 cells" in caught.reason
    content = npz_bytes(X=np.zeros((40, 3)), y=np.arange(40) % 2)
    assert "over the limit" in error(load_table, config(), Upload(content, "npz", 159)).reason


def test_a_text_column_of_too_many_distinct_values_is_refused_while_parsing() -> None:
    rows = [[i, f"id-{i}", i % 2] for i in range(1200)]
    caught = error(load_table, config(), csv_upload(["x", "id", "label"], rows))
    assert "'id' has over 1000 distinct text values" in caught.reason


def test_a_csv_table_costs_8_bytes_a_cell_whatever_its_text() -> None:
    long = "x" * 10_000  # one long category would make a fixed-width str column 40 kB a row
    rows = [[i, long if i == 0 else "short", i % 2] for i in range(200)]
    table = load_table(config(), csv_upload(["x", "kind", "label"], rows))
    assert table.features.categorical.dtype == object
    assert table.features.categorical.nbytes == 8 * 200
    assert set(table.features.categorical[:, 0]) == {long, "short"}


def zip_that_lies(declared: bytes, inflated: int) -> bytes:
    """A deflated X.npy whose zip directory declares (size and CRC) only `declared`, while its
    data inflates to `inflated` more bytes of zeros; y is truthful."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("X.npy", "w") as member:
            member.write(declared)
            zeros = bytes(2**24)
            for _ in range(inflated // len(zeros)):
                member.write(zeros)
        archive.writestr("y.npy", npy_member(np.arange(10) % 2))
    content = bytearray(buffer.getvalue())
    entry = content.index(b"PK\x01\x02")  # X's entry in the central directory
    struct.pack_into("<I", content, entry + 16, zlib.crc32(declared))
    struct.pack_into("<I", content, entry + 24, len(declared))
    return bytes(content)


def npy_member(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_member_inflating_past_its_declared_size_is_never_inflated() -> None:
    content = zip_that_lies(npy_member(np.ones((10, 3))), inflated=2**28)
    tracemalloc.start()
    try:
        table = load_table(config(), Upload(content, "npz", 2**24))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert table.X.shape == (10, 3) and (table.X == 1).all()
    assert peak < 8 * 2**20  # of the 256 MiB the member inflates to, a few chunks at most


def test_an_archive_of_many_tiny_entries_is_refused_before_its_directory_is_read() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("X.npy", npy_member(np.zeros((10, 2))))
        archive.writestr("y.npy", npy_member(np.arange(10) % 2))
        for i in range(2000):
            archive.writestr(f"pad{i}", b"")
    caught = error(load_table, config(), Upload(buffer.getvalue(), "npz", 2**24))
    assert "zip directory is" in caught.reason


def test_members_named_as_numpy_names_them_are_read() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("X", npy_member(np.ones((10, 2))))  # numpy reads "X" as X too
        archive.writestr("y.npy", npy_member(np.arange(10) % 2))
    assert load_table(config(), Upload(buffer.getvalue(), "npz", 2**24)).X.shape == (10, 2)
