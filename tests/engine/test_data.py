"""Built-in data sets, the seeded stratified split, and train-only preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from worker.engine import ConfigError, load_splits
from worker.engine.config import DatasetConfig, PreprocessConfig
from worker.engine.data import DATA_DIR, load_table, stratified_split
from worker.engine.preprocessing import fit_preprocessor


def dataset(name: str = "iris", seed: int = 0, scale: str = "standard") -> DatasetConfig:
    return DatasetConfig(
        name=name,
        split={"validation": 0.2, "test": 0.2, "seed": seed},
        preprocess={"scale": scale},
    )


def raw_iris() -> tuple[np.ndarray, np.ndarray]:
    """iris.csv read here independently of the engine: skip the header, last column is y."""
    table = np.loadtxt(DATA_DIR / "iris.csv", delimiter=",", skiprows=1)
    return table[:, :-1], table[:, -1].astype(int)


@pytest.mark.parametrize(
    ("name", "shape", "n_classes"),
    [("iris", (150, 4), 3), ("digits", (1797, 64), 10), ("moons", (500, 2), 2)],
)
def test_builtin_tables_have_their_documented_shape(name, shape, n_classes) -> None:
    table = load_table(name)
    assert table.X.shape == shape
    assert table.X.dtype == np.float64
    assert set(np.unique(table.y)) == set(range(n_classes))
    assert len(table.class_names) == n_classes


def test_moons_is_the_same_every_time() -> None:
    assert np.array_equal(load_table("moons").X, load_table("moons").X)


def test_unknown_data_set_names_the_field_and_lists_the_builtins() -> None:
    with pytest.raises(ConfigError) as caught:
        load_splits(DatasetConfig(name="mnist"))
    assert caught.value.field == "dataset.name"
    assert "'mnist'" in caught.value.reason
    assert "iris" in caught.value.reason and "moons" in caught.value.reason


def test_split_is_seeded() -> None:
    y = load_table("digits").y
    first = stratified_split(y, 0.2, 0.2, seed=7)
    again = stratified_split(y, 0.2, 0.2, seed=7)
    other = stratified_split(y, 0.2, 0.2, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_splits_partition_the_rows() -> None:
    y = load_table("digits").y
    train, val, test = stratified_split(y, 0.25, 0.15, seed=3)
    assert (
        len(set(train) & set(val)) == len(set(train) & set(test)) == len(set(val) & set(test)) == 0
    )
    assert sorted([*train, *val, *test]) == list(range(len(y)))
    assert len(val) == round(0.25 * len(y)) and len(test) == round(0.15 * len(y))


@pytest.mark.parametrize("name", ["iris", "digits", "moons"])
def test_split_is_stratified(name: str) -> None:
    y = load_table(name).y
    overall = np.bincount(y) / len(y)
    for rows in stratified_split(y, 0.2, 0.2, seed=5):
        share = np.bincount(y[rows], minlength=len(overall)) / len(rows)
        # At most about one row per class off the exact share.
        assert np.abs(share - overall).max() <= 1.5 / len(rows) + 1e-12


def test_split_leaving_no_training_rows_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_splits(DatasetConfig(name="iris", split={"validation": 0.6, "test": 0.5}))
    assert caught.value.field == "dataset.split"


def test_load_splits_is_seeded_end_to_end() -> None:
    a, b, c = (
        load_splits(dataset(seed=1)),
        load_splits(dataset(seed=1)),
        load_splits(dataset(seed=2)),
    )
    assert np.array_equal(a.X_val, b.X_val) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_val, c.X_val)


def test_standardisation_is_fitted_on_the_training_split_only() -> None:
    config = dataset(seed=4)
    splits = load_splits(config)
    X, _ = raw_iris()
    train, val, test = stratified_split(load_table("iris").y, 0.2, 0.2, seed=4)
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)

    assert np.allclose(splits.preprocessor.center, mean)
    assert np.allclose(splits.preprocessor.scale, std)
    assert np.allclose(splits.X_train.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(splits.X_train.std(axis=0), 1.0)
    assert np.allclose(splits.X_val, (X[val] - mean) / std)
    assert np.allclose(splits.X_test, (X[test] - mean) / std)
    # Validation rows were not used for the statistics, so their mean is not exactly 0.
    assert np.abs(splits.X_val.mean(axis=0)).max() > 1e-3


def test_minmax_maps_the_training_split_to_unit_range() -> None:
    splits = load_splits(dataset(scale="minmax"))
    assert np.allclose(splits.X_train.min(axis=0), 0.0)
    assert np.allclose(splits.X_train.max(axis=0), 1.0)


def test_constant_columns_do_not_divide_by_zero() -> None:
    splits = load_splits(dataset("digits"))
    # The digits' border pixels are 0 in every training image.
    assert (splits.preprocessor.scale == 1.0).any()
    assert np.isfinite(splits.X_train).all() and np.isfinite(splits.X_val).all()


def test_splits_have_the_documented_types() -> None:
    splits = load_splits(dataset("digits"))
    assert splits.task == "classification" and splits.n_classes == 10
    assert all(a.dtype == np.float64 for a in (splits.X_train, splits.X_val, splits.X_test))
    assert all(a.dtype.kind == "i" for a in (splits.y_train, splits.y_val, splits.y_test))


def test_imputation_fills_with_training_statistics() -> None:
    X_train = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 8.0]])
    pre = fit_preprocessor(PreprocessConfig(scale="none", impute="mean"), X_train)
    assert np.allclose(pre.transform(np.array([[np.nan, np.nan]])), [[2.0, 6.0]])
