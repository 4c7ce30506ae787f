"""The training loop: learning, reproducibility, divergence, pruning, stopping, symmetry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from worker.engine import ENGINE_VERSION, TrainConfig, load_splits, train

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


def test_engine_version() -> None:
    assert ENGINE_VERSION == "0.1.0"


def test_softmax_regression_learns_iris() -> None:
    cfg = config(optimizer="sgd", learning_rate=0.1, batch_size=16, epochs=50)
    result = train(cfg, load_splits(cfg.dataset))
    assert result.status == "complete" and result.reason is None and result.epochs == 50
    assert result.metrics["val_accuracy"] >= 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


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
    cfg = config("moons", {"type": "mlp", "hidden": [8]}, batch_size=32, epochs=5, seed=3)
    first, second = train(cfg), train(cfg)
    assert [without_timings(m) for m in first.history] == [
        without_timings(m) for m in second.history
    ]
    assert without_timings(first.metrics) == without_timings(second.metrics)


def test_a_different_seed_gives_different_numbers() -> None:
    mlp = {"type": "mlp", "hidden": [8]}
    first = train(config("moons", mlp, batch_size=32, epochs=3, seed=1))
    second = train(config("moons", mlp, batch_size=32, epochs=3, seed=2))
    assert first.metrics["train_loss"] != second.metrics["train_loss"]


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


def first_epoch_without_improvement(losses: list[float], patience: int) -> int | None:
    best, waited = float("inf"), 0
    for epoch, loss in enumerate(losses, start=1):
        best, waited = (loss, 0) if loss < best else (best, waited + 1)
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
    assert result.epochs == first_epoch_without_improvement(losses, 3)


def test_grad_tol_stops_at_the_first_small_gradient() -> None:
    result = train(
        config(optimizer="gd", learning_rate=0.5, epochs=500, stopping={"grad_tol": 0.05})
    )
    norms = [m["grad_norm"] for m in result.history]
    assert result.epochs < 500 and "grad_norm" in result.reason
    assert norms[-1] < 0.05 and all(n >= 0.05 for n in norms[:-1])


def test_gd_uses_the_whole_training_set_whatever_the_batch_size() -> None:
    small = train(config(optimizer="gd", learning_rate=0.5, epochs=3, batch_size=4))
    full = train(config(optimizer="gd", learning_rate=0.5, epochs=3, batch_size=None))
    assert without_timings(small.metrics) == without_timings(full.metrics)


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
