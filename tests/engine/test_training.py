"""The training loop: learning, reproducibility, divergence, pruning, stopping, modes, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hpsearch.worker.engine import (
    ENGINE_VERSION,
    ConfigError,
    Splits,
    TrainConfig,
    load_splits,
    train,
)
from hpsearch.worker.engine.training import Trainer

EPOCH_KEYS = {
    "train_loss",
    "val_loss",
    "val_accuracy",
    "grad_norm",
    "learning_rate",
    "epoch_seconds",
}
TIMING_KEYS = {"epoch_seconds", "train_seconds"}


def config(name: str = "iris", model: dict | None = None, **training: Any) -> TrainConfig:
    return TrainConfig.parse(
        {"dataset": {"name": name}, "model": model or {"type": "softmax"}, "training": training}
    )


def without_timings(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def regression_splits(seed: int = 0, n: int = 400) -> Splits:
    """y = X w + b + noise, split 60/20/20: a problem with a closed-form answer."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 0.7 + 0.1 * rng.normal(size=n)
    a, b = int(0.6 * n), int(0.8 * n)
    return Splits(X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:], n_classes=0, task="regression")


def test_engine_version() -> None:
    assert ENGINE_VERSION == "0.1.0"


def test_softmax_regression_learns_iris() -> None:
    cfg = config(optimizer="sgd", learning_rate=0.1, batch_size=16, epochs=50)
    result = train(cfg, load_splits(cfg.dataset))
    assert result.status == "complete" and result.reason is None and result.epochs == 50
    assert result.metrics["val_accuracy"] >= 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_linear_regression_approaches_least_squares() -> None:
    data = regression_splits()
    cfg = TrainConfig.parse(
        {
            "dataset": {"name": "closed-form"},
            "model": {"type": "linear", "init": "zeros"},
            "training": {
                "optimizer": "gd",
                "learning_rate": 0.1,
                "epochs": 300,
                "dtype": "float64",
            },
        }
    )
    result = train(cfg, data)
    design = np.column_stack([data.X_train, np.ones(len(data.X_train))])
    solution, *_ = np.linalg.lstsq(design, data.y_train, rcond=None)
    assert np.allclose(result.params["dense0.W"][:, 0], solution[:3], atol=1e-6)
    assert result.params["dense0.b"][0] == pytest.approx(solution[3], abs=1e-6)
    residual = data.y_val - np.column_stack([data.X_val, np.ones(len(data.y_val))]) @ solution
    assert result.metrics["val_rmse"] == pytest.approx(np.sqrt(np.mean(residual**2)), rel=1e-6)
    assert {"val_rmse", "test_rmse", "test_loss"} <= set(result.metrics)
    assert "val_accuracy" not in result.metrics


def test_regression_reports_rmse_and_rss_sums() -> None:
    data = regression_splits(1)
    base = {"dataset": {"name": "closed-form"}, "model": {"type": "mlp", "hidden": [8]}}
    mse = train(TrainConfig.parse({**base, "training": {"epochs": 3, "loss": "mse"}}), data)
    rss = train(TrainConfig.parse({**base, "training": {"epochs": 1, "loss": "rss"}}), data)
    assert mse.status == rss.status == "complete"
    first = mse.history[0]
    assert set(first) == EPOCH_KEYS - {"val_accuracy"} | {"val_rmse"}
    # rss sums where mse averages: over the validation split that is a factor of its size.
    assert rss.history[0]["val_rmse"] ** 2 * len(data.y_val) == pytest.approx(
        rss.history[0]["val_loss"], rel=1e-5
    )


def test_builtin_regression_set_trains() -> None:
    result = train(config("linear", {"type": "linear"}, learning_rate=0.05, epochs=40))
    assert result.status == "complete" and result.metrics["val_rmse"] < 1.0


def test_report_is_called_once_per_epoch_with_the_metrics() -> None:
    calls: list[tuple[int, dict[str, float]]] = []
    result = train(config(epochs=4), report=lambda step, metrics: calls.append((step, metrics)))
    assert [step for step, _ in calls] == [1, 2, 3, 4]
    for _, metrics in calls:
        assert set(metrics) == EPOCH_KEYS
        assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    assert {"test_loss", "test_accuracy", "train_seconds"} <= set(result.metrics)
    assert without_timings(result.metrics).items() >= without_timings(calls[-1][1]).items()


def test_same_config_gives_identical_numbers() -> None:
    model = {"type": "mlp", "hidden": [8, 8], "batch_norm": True, "dropout": 0.2}
    cfg = config("moons", model, batch_size=32, epochs=5, seed=3)
    first, second = train(cfg), train(cfg)
    assert [without_timings(m) for m in first.history] == [
        without_timings(m) for m in second.history
    ]
    assert without_timings(first.metrics) == without_timings(second.metrics)
    for name, value in first.params.items():
        assert np.array_equal(value, second.params[name]), name


def test_a_different_seed_gives_different_numbers() -> None:
    mlp = {"type": "mlp", "hidden": [8]}
    first = train(config("moons", mlp, batch_size=32, epochs=3, seed=1))
    second = train(config("moons", mlp, batch_size=32, epochs=3, seed=2))
    assert first.metrics["train_loss"] != second.metrics["train_loss"]


def test_parameters_are_float32_by_default_and_float64_on_request() -> None:
    assert config().training.dtype == "float32"
    assert all(v.dtype == np.float32 for v in train(config(epochs=1)).params.values())
    assert all(
        v.dtype == np.float64 for v in train(config(epochs=1, dtype="float64")).params.values()
    )


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("learning_rate", [10.0, 1e300])
def test_a_huge_learning_rate_diverges_without_raising(learning_rate: float) -> None:
    cfg = config(
        "digits", {"type": "mlp", "hidden": [64]}, optimizer="sgd", learning_rate=learning_rate
    )
    result = train(cfg)
    assert result.status == "diverged"
    assert result.reason is not None and f"epoch {result.epochs}" in result.reason
    assert result.epochs < cfg.training.epochs
    assert all(np.isfinite(v) for v in result.metrics.values())


def test_report_returning_true_prunes() -> None:
    steps: list[int] = []

    def report(step: int, metrics: dict[str, float]) -> bool:
        steps.append(step)
        return step == 3

    result = train(config(epochs=10), report=report)
    assert result.status == "pruned"
    assert result.epochs == 3 and steps == [1, 2, 3]
    assert "test_accuracy" in result.metrics


def first_stale_epoch(values: list[float], patience: int, higher_is_better: bool) -> int | None:
    best, waited = None, 0
    for epoch, value in enumerate(values, start=1):
        better = best is None or (value > best if higher_is_better else value < best)
        best, waited = (value, 0) if better else (best, waited + 1)
        if waited == patience:
            return epoch
    return None


def test_patience_stops_when_val_loss_stops_improving() -> None:
    result = train(
        config(optimizer="adam", learning_rate=0.5, epochs=500, stopping={"patience": 3})
    )
    assert result.status == "complete" and result.epochs < 500
    assert "val_loss" in result.reason
    losses = [m["val_loss"] for m in result.history]
    assert result.epochs == first_stale_epoch(losses, 3, higher_is_better=False)


def test_patience_on_val_accuracy_maximises_it() -> None:
    stopping = {"patience": 4, "monitor": "val_accuracy"}
    result = train(config(optimizer="sgd", learning_rate=0.05, epochs=300, stopping=stopping))
    assert result.status == "complete" and "val_accuracy" in result.reason
    accuracies = [m["val_accuracy"] for m in result.history]
    assert result.epochs == first_stale_epoch(accuracies, 4, higher_is_better=True)
    losses = [m["val_loss"] for m in result.history]
    assert first_stale_epoch(losses, 4, higher_is_better=False) != result.epochs


def test_min_delta_demands_a_real_improvement() -> None:
    loose = train(config(learning_rate=0.05, epochs=300, stopping={"patience": 3}))
    strict = train(
        config(learning_rate=0.05, epochs=300, stopping={"patience": 3, "min_delta": 0.01})
    )
    assert strict.epochs < loose.epochs


def test_grad_tol_stops_at_the_first_small_gradient() -> None:
    result = train(
        config(optimizer="gd", learning_rate=0.5, epochs=500, stopping={"grad_tol": 0.05})
    )
    norms = [m["grad_norm"] for m in result.history]
    assert result.epochs < 500 and "grad_norm" in result.reason
    assert norms[-1] < 0.05 and all(n >= 0.05 for n in norms[:-1])


@pytest.mark.parametrize(("limit", "epochs"), [(6, 1), (7, 2), (12, 2), (13, 3)])
def test_max_iterations_counts_optimizer_steps(limit: int, epochs: int) -> None:
    # iris: 90 training rows in batches of 16 make 6 steps an epoch.
    cfg = config(batch_size=16, epochs=50, stopping={"max_iterations": limit})
    result = train(cfg)
    assert result.status == "complete" and result.epochs == epochs
    assert result.steps == limit and "max_iterations" in result.reason
    gd = train(config(optimizer="gd", learning_rate=0.1, stopping={"max_iterations": 5}))
    assert gd.epochs == gd.steps == 5


def test_gd_uses_the_whole_training_set_whatever_the_batch_size() -> None:
    small = train(config(optimizer="gd", learning_rate=0.5, epochs=3, batch_size=4))
    full = train(config(optimizer="gd", learning_rate=0.5, epochs=3, batch_size=None))
    assert without_timings(small.metrics) == without_timings(full.metrics)
    assert small.steps == 3


def test_the_schedule_sets_each_epochs_learning_rate() -> None:
    schedule = {"type": "step", "every": 2, "factor": 0.5}
    result = train(config(learning_rate=0.4, epochs=5, schedule=schedule))
    assert [m["learning_rate"] for m in result.history] == [0.4, 0.4, 0.2, 0.2, 0.1]


@pytest.mark.parametrize(
    "optimizer", ["gd", "sgd", "momentum", "nag", "adagrad", "adadelta", "rmsprop", "adamw"]
)
def test_every_optimizer_trains_an_mlp(optimizer: str) -> None:
    learning_rate = {"gd": 0.5, "sgd": 0.1, "momentum": 0.05, "nag": 0.05, "adagrad": 0.1}
    settings = {"learning_rate": learning_rate.get(optimizer, 0.01), "weight_decay": 1e-4}
    if optimizer == "adadelta":
        settings.update(learning_rate=None, epsilon=1e-6)
    model = {"type": "mlp", "hidden": [16], "activation": "tanh"}
    result = train(config("iris", model, optimizer=optimizer, epochs=30, **settings))
    assert result.status == "complete"
    assert result.history[-1]["train_loss"] < 0.7 * result.history[0]["train_loss"]


def hidden_units_identical(params: dict[str, np.ndarray]) -> bool:
    W1, b1, W2 = params["dense0.W"], params["dense0.b"], params["dense1.W"]
    return np.allclose(W1, W1[:, :1]) and np.allclose(b1, b1[0]) and np.allclose(W2, W2[:1, :])


def test_zeros_init_keeps_hidden_units_identical_and_he_init_does_not() -> None:
    def trained(init: str) -> dict[str, np.ndarray]:
        model = {"type": "mlp", "hidden": [8], "activation": "sigmoid", "init": init}
        return train(config("moons", model, optimizer="sgd", learning_rate=0.5, epochs=10)).params

    zeros, he = trained("zeros"), trained("he")
    assert np.abs(zeros["dense0.W"]).max() > 1e-5  # trained, yet every unit moved alike
    assert hidden_units_identical(zeros)
    assert not hidden_units_identical(he)


def trained_trainer(model: dict, epochs: int = 3) -> Trainer:
    cfg = config("iris", model, batch_size=8, epochs=epochs, dtype="float64")
    trainer = Trainer(cfg, load_splits(cfg.dataset))
    for epoch in range(1, epochs + 1):
        trainer.run_epoch(epoch)
    return trainer


def test_batch_norm_evaluates_with_running_statistics() -> None:
    trainer = trained_trainer({"type": "mlp", "hidden": [6], "batch_norm": True})
    net, X = trainer.net, trainer.val_split.rows[:, :-1]
    together = net.predict(X)
    alone = np.vstack([net.predict(X[i : i + 1]) for i in range(len(X))])
    assert np.allclose(together, alone, rtol=1e-12, atol=1e-12)  # no dependence on the batch

    p, stats = net.params, net.buffers()
    assert not np.allclose(stats["bn0.running_mean"], 0.0)  # training moved them
    z = X @ p["dense0.W"] + p["dense0.b"]
    normed = (z - stats["bn0.running_mean"]) / np.sqrt(stats["bn0.running_var"] + 1e-5)
    h = np.maximum(p["bn0.gamma"] * normed + p["bn0.beta"], 0.0)
    assert np.allclose(together, h @ p["dense1.W"] + p["dense1.b"], rtol=1e-10)


def test_dropout_is_inactive_in_evaluation() -> None:
    trainer = trained_trainer({"type": "mlp", "hidden": [12], "dropout": 0.5})
    net, X = trainer.net, trainer.val_split.rows[:, :-1]
    p = net.params
    expected = np.maximum(X @ p["dense0.W"] + p["dense0.b"], 0.0) @ p["dense1.W"] + p["dense1.b"]
    assert np.allclose(net.predict(X), expected, rtol=1e-10)
    assert np.array_equal(net.predict(X), net.predict(X))


MLP = {"type": "mlp"}
MONITOR = "training.stopping.monitor"


@pytest.mark.parametrize(
    ("name", "model", "training", "field"),
    [
        ("iris", MLP, {"loss": "bce"}, "training.loss"),
        ("iris", {"type": "logistic"}, {}, "model.type"),
        ("iris", {"type": "linear"}, {}, "model.type"),
        ("moons", {"type": "logistic"}, {"loss": "cross_entropy"}, "training.loss"),
        ("moons", {"type": "softmax"}, {"loss": "bce"}, "training.loss"),
        ("linear", MLP, {"loss": "cross_entropy"}, "training.loss"),
        ("linear", {"type": "softmax"}, {}, "model.type"),
        ("iris", MLP, {"epsilon": -1e-8}, "training.epsilon"),
        ("iris", MLP, {"optimizer": "sgd", "learning_rate": None}, "training.learning_rate"),
        ("iris", MLP, {"optimizer": "rmsprop", "gamma": 1.0}, "training.gamma"),
        ("iris", {**MLP, "batch_norm": True}, {"batch_size": 1}, "training.batch_size"),
        ("iris", MLP, {"stopping": {"patience": 2, "monitor": "val_rmse"}}, MONITOR),
        ("linear", MLP, {"stopping": {"patience": 2, "monitor": "val_accuracy"}}, MONITOR),
        ("iris", MLP, {"schedule": {"type": "cosine", "min_lr": 1.0}}, "training.schedule.min_lr"),
        ("iris", {**MLP, "hidden": [0]}, {}, "model.hidden.0"),
        ("iris", MLP, {"optimizer": "lion"}, "training.optimizer"),
    ],
)
def test_bad_configs_raise_config_error_naming_the_field(
    name: str, model: dict, training: dict, field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        cfg = TrainConfig.parse({"dataset": {"name": name}, "model": model, "training": training})
        train(cfg)
    assert caught.value.field == field


def test_bce_trains_a_binary_mlp_with_one_output() -> None:
    model = {"type": "mlp", "hidden": [16]}
    result = train(config("moons", model, loss="bce", learning_rate=0.01, epochs=20))
    assert result.params["dense1.W"].shape == (16, 1)
    assert result.metrics["val_accuracy"] > 0.8


def test_logistic_regression_learns_breast_cancer() -> None:
    result = train(config("breast_cancer", {"type": "logistic"}, learning_rate=0.01, epochs=20))
    assert result.status == "complete" and result.metrics["val_accuracy"] > 0.9
