"""Built-in data sets, the seeded stratified split, and train-only preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from hpsearch.worker.engine import BUILTIN_DATASETS, ConfigError, load_splits
from hpsearch.worker.engine.config import DatasetConfig, PreprocessConfig
from hpsearch.worker.engine.data import load_table, split_rows
from hpsearch.worker.engine.preprocessing import Features, fit_preprocessor, numeric_features
from hpsearch.worker.engine.tables import DATA_DIR


def dataset(name: str = "iris", seed: int = 0, **preprocess: object) -> DatasetConfig:
    return DatasetConfig(
        name=name,
        split={"validation": 0.2, "test": 0.2, "seed": seed},
        preprocess={"scale": "standard", **preprocess},
    )


def raw_iris() -> tuple[np.ndarray, np.ndarray]:
    """iris.csv read here independently of the engine: skip the header, last column is y."""
    table = np.loadtxt(DATA_DIR / "iris.csv", delimiter=",", skiprows=1)
    return table[:, :-1], table[:, -1].astype(int)


def iris_train_rows(seed: int) -> np.ndarray:
    return split_rows(150, 0.2, 0.2, seed, classes=raw_iris()[1])[0]


# --- Built-in sets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "task", "n_classes"),
    [
        ("iris", (150, 4), "classification", 3),
        ("wine", (178, 13), "classification", 3),
        ("breast_cancer", (569, 30), "classification", 2),
        ("digits", (1797, 64), "classification", 10),
        ("linear", (200, 5), "regression", 0),
        ("cubic", (200, 1), "regression", 0),
        ("blobs", (300, 2), "classification", 3),
        ("moons", (500, 2), "classification", 2),
        ("spirals", (500, 2), "classification", 2),
    ],
)
def test_builtin_sets_have_their_documented_shape_and_task(name, shape, task, n_classes) -> None:
    table = load_table(DatasetConfig(name=name))
    assert table.X.shape == shape and table.X.dtype == np.float64
    assert table.task == task == BUILTIN_DATASETS[name]
    assert len(table.class_names) == n_classes
    assert len(table.features.numeric_names) == shape[1]
    if task == "classification":
        assert table.y.dtype == np.int64
        assert set(np.unique(table.y)) == set(range(n_classes))
    else:
        assert table.y.dtype == np.float64 and table.y.shape == (shape[0],)


def test_every_builtin_set_is_tested() -> None:
    assert set(BUILTIN_DATASETS) == {
        "iris",
        "wine",
        "breast_cancer",
        "digits",
        "linear",
        "cubic",
        "blobs",
        "moons",
        "spirals",
    }


def test_shipped_iris_matches_the_file() -> None:
    X, y = raw_iris()
    table = load_table(DatasetConfig(name="iris"))
    assert np.array_equal(table.X, X) and np.array_equal(table.y, y)
    assert table.class_names == ("setosa", "versicolor", "virginica")


def test_unknown_data_set_names_the_field_and_lists_the_builtins() -> None:
    with pytest.raises(ConfigError) as caught:
        load_splits(DatasetConfig(name="mnist"))
    assert caught.value.field == "dataset.name"
    assert "'mnist'" in caught.value.reason
    assert all(name in caught.value.reason for name in ("iris", "cubic", "spirals"))


@pytest.mark.parametrize(("setting", "field"), [("n_samples", "n_samples"), ("noise", "noise")])
def test_generator_settings_are_refused_for_a_shipped_table(setting, field) -> None:
    with pytest.raises(ConfigError) as caught:
        load_splits(DatasetConfig(name="iris", **{setting: 50}))
    assert caught.value.field == f"dataset.{field}"
    assert str(caught.value).startswith(f"dataset.{field}:")


def test_a_task_contradicting_a_builtin_set_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_splits(DatasetConfig(name="iris", task="regression"))
    assert caught.value.field == "dataset.task"


def test_a_builtin_set_ignores_target_as_the_study_file_example_sets_it() -> None:
    splits = load_splits(DatasetConfig(name="digits", target="label"))
    assert splits.n_classes == 10


# --- The split -----------------------------------------------------------------------------


def test_split_is_seeded() -> None:
    y = load_table(DatasetConfig(name="digits")).y
    first = split_rows(len(y), 0.2, 0.2, seed=7, classes=y)
    again = split_rows(len(y), 0.2, 0.2, seed=7, classes=y)
    other = split_rows(len(y), 0.2, 0.2, seed=8, classes=y)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("stratified", [True, False])
def test_splits_partition_the_rows(stratified: bool) -> None:
    y = load_table(DatasetConfig(name="digits")).y
    train, val, test = split_rows(len(y), 0.25, 0.15, 3, classes=y if stratified else None)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert sorted([*train, *val, *test]) == list(range(len(y)))
    assert all(np.all(np.diff(rows) > 0) for rows in (train, val, test))
    assert len(val) == round(0.25 * len(y)) and len(test) == round(0.15 * len(y))


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits", "blobs", "moons"])
def test_split_is_stratified(name: str) -> None:
    y = load_table(DatasetConfig(name=name)).y
    overall = np.bincount(y) / len(y)
    for rows in split_rows(len(y), 0.2, 0.2, seed=5, classes=y):
        share = np.bincount(y[rows], minlength=len(overall)) / len(rows)
        # At most about one row per class off the exact share.
        assert np.abs(share - overall).max() <= 1.5 / len(rows) + 1e-12


def test_an_unstratified_split_does_not_keep_class_shares() -> None:
    # Shares drift by more than a row somewhere over a few seeds when not stratified.
    y = load_table(DatasetConfig(name="digits")).y
    overall = np.bincount(y) / len(y)
    drift = max(
        np.abs(np.bincount(y[rows], minlength=10) / len(rows) - overall).max() * len(rows)
        for seed in range(5)
        for rows in split_rows(len(y), 0.2, 0.2, seed)
    )
    assert drift > 1.5


def test_every_class_reaches_the_training_split() -> None:
    # Classes of one, two and three rows among many: each still has a training row.
    y = np.array([0] * 40 + [1] + [2] * 2 + [3] * 3)
    for seed in range(20):
        train, _, _ = split_rows(len(y), 0.3, 0.4, seed, classes=y)
        assert set(y[train]) == {0, 1, 2, 3}


def test_split_leaving_no_training_rows_is_refused() -> None:
    config = DatasetConfig(name="linear", n_samples=10, split={"validation": 0.49, "test": 0.5})
    with pytest.raises(ConfigError) as caught:
        load_splits(config)
    assert caught.value.field == "dataset.split"


def test_load_splits_is_seeded_end_to_end() -> None:
    a, b, c = (
        load_splits(dataset(seed=1)),
        load_splits(dataset(seed=1)),
        load_splits(dataset(seed=2)),
    )
    assert np.array_equal(a.X_val, b.X_val) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_val, c.X_val)


def test_regression_splits_are_shuffled_and_cover_every_row() -> None:
    config = DatasetConfig(name="linear", split={"seed": 3}, preprocess={"scale": "none"})
    splits = load_splits(config)
    table = load_table(config)
    got = np.concatenate([splits.y_train, splits.y_val, splits.y_test])
    assert np.array_equal(np.sort(got), np.sort(table.y))
    assert splits.y_train.dtype == np.float64 and splits.n_classes == 0
    # Shuffled: the training rows are not simply the first rows of the table.
    assert not np.array_equal(splits.y_train, table.y[: len(splits.y_train)])


# --- Preprocessing on the training split only ---------------------------------------------


def test_standardisation_is_fitted_on_the_training_split_only() -> None:
    splits = load_splits(dataset(seed=4))
    X, y = raw_iris()
    train, val, test = split_rows(150, 0.2, 0.2, 4, classes=y)
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)

    assert np.allclose(splits.preprocessor.center, mean)
    assert np.allclose(splits.preprocessor.scale, std)
    assert np.allclose(splits.X_train.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(splits.X_train.std(axis=0), 1.0)
    assert np.allclose(splits.X_val, (X[val] - mean) / std)
    assert np.allclose(splits.X_test, (X[test] - mean) / std)
    assert np.array_equal(splits.y_val, y[val])
    # Validation rows were not used for the statistics, so their mean is not exactly 0.
    assert np.abs(splits.X_val.mean(axis=0)).max() > 1e-3


def test_minmax_maps_the_training_split_to_unit_range() -> None:
    splits = load_splits(dataset(scale="minmax"))
    X, _ = raw_iris()
    train = iris_train_rows(0)
    assert np.allclose(splits.preprocessor.center, X[train].min(axis=0))
    assert np.allclose(splits.X_train.min(axis=0), 0.0)
    assert np.allclose(splits.X_train.max(axis=0), 1.0)


def test_constant_columns_do_not_divide_by_zero() -> None:
    splits = load_splits(dataset("digits"))
    # The digits' border pixels are 0 in every training image.
    assert (splits.preprocessor.scale == 1.0).any()
    assert np.isfinite(splits.X_train).all() and np.isfinite(splits.X_val).all()


def test_clipping_bounds_come_from_the_training_split() -> None:
    splits = load_splits(dataset(seed=2, clip=1.0, scale="none"))
    X, _ = raw_iris()
    train = iris_train_rows(2)
    lower = X[train].mean(axis=0) - X[train].std(axis=0)
    upper = X[train].mean(axis=0) + X[train].std(axis=0)
    assert np.allclose(splits.preprocessor.lower, lower)
    assert np.allclose(splits.preprocessor.upper, upper)
    assert np.allclose(splits.X_train, np.clip(X[train], lower, upper))
    for X_split in (splits.X_val, splits.X_test):
        assert (X_split >= lower - 1e-12).all() and (X_split <= upper + 1e-12).all()


def test_scaling_follows_clipping() -> None:
    splits = load_splits(dataset(seed=2, clip=1.0))
    X, _ = raw_iris()
    train = iris_train_rows(2)
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    clipped = np.clip(X[train], mean - std, mean + std)
    assert np.allclose(splits.preprocessor.center, clipped.mean(axis=0))
    assert np.allclose(splits.X_train.std(axis=0), 1.0)


def test_splits_have_the_documented_types() -> None:
    splits = load_splits(dataset("digits"))
    assert splits.task == "classification" and splits.n_classes == 10
    assert splits.class_names == tuple(str(k) for k in range(10))
    assert len(splits.feature_names) == splits.n_features == 64
    for X in (splits.X_train, splits.X_val, splits.X_test):
        assert X.dtype == np.float64 and X.flags.c_contiguous
    assert all(a.dtype == np.int64 for a in (splits.y_train, splits.y_val, splits.y_test))


@pytest.mark.parametrize(("impute", "reduce"), [("mean", np.mean), ("median", np.median)])
def test_imputation_fills_with_training_statistics(impute, reduce) -> None:
    X_train = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 8.0], [10.0, 9.0]])
    pre = fit_preprocessor(PreprocessConfig(scale="none", impute=impute), numeric_features(X_train))
    expected = [reduce([1.0, 3.0, 10.0]), reduce([4.0, 8.0, 9.0])]
    filled = pre.transform(numeric_features(np.array([[np.nan, np.nan], [5.0, np.nan]])))
    assert np.allclose(filled, [expected, [5.0, expected[1]]])


def test_a_column_missing_in_every_training_row_is_filled_with_zero() -> None:
    X_train = np.array([[1.0, np.nan], [2.0, np.nan]])
    pre = fit_preprocessor(PreprocessConfig(scale="none"), numeric_features(X_train))
    assert np.allclose(pre.transform(numeric_features(X_train)), [[1.0, 0.0], [2.0, 0.0]])


def categorical(*columns: list[str], numeric: list[float] | None = None) -> Features:
    n = len(columns[0])
    X = np.array(numeric if numeric is not None else [0.0] * n)[:, None]
    names = tuple(f"c{j}" for j in range(len(columns)))
    return Features(X, ("x",), np.column_stack([np.array(c) for c in columns]), names)


def test_one_hot_takes_categories_from_train_and_zeros_unseen_ones() -> None:
    pre = fit_preprocessor(
        PreprocessConfig(scale="none"), categorical(["red", "blue", "red"], ["a", "a", "b"])
    )
    assert pre.feature_names == ("x", "c0=blue", "c0=red", "c1=a", "c1=b")
    out = pre.transform(categorical(["blue", "green"], ["b", "z"]))
    assert np.array_equal(out, [[0, 1, 0, 0, 1], [0, 0, 0, 0, 0]])


def test_a_missing_category_takes_the_training_mode() -> None:
    pre = fit_preprocessor(
        PreprocessConfig(), categorical(["b", "a", "b", "", ""], numeric=[1, 2, 3, 4, 5])
    )
    assert pre.category_fill == ("b",)
    assert np.array_equal(pre.transform(categorical([""]))[:, 1:], [[0, 1]])


def test_indicator_columns_are_neither_scaled_nor_clipped() -> None:
    config = PreprocessConfig(scale="standard", clip=0.5)
    pre = fit_preprocessor(config, categorical(["a"] * 9 + ["b"], numeric=list(range(10))))
    out = pre.transform(categorical(["a", "b"], numeric=[0, 0]))
    assert np.array_equal(out[:, 1:], [[1, 0], [0, 1]])


def test_categorical_columns_need_one_hot() -> None:
    with pytest.raises(ConfigError) as caught:
        fit_preprocessor(PreprocessConfig(one_hot=False), categorical(["a", "b"]))
    assert caught.value.field == "dataset.preprocess.one_hot"
    assert "'c0'" in caught.value.reason
