"""Ridge regression trained by full-batch gradient descent: an hpsearch trainer plugin.

Loss per step: mean squared error plus ``alpha * ||w||^2`` (the bias is not penalised). The
data is either synthetic (a seeded linear target with noise) or an uploaded NPZ of the study's
team with arrays ``X`` (rows x features) and ``y`` (rows), named in ``data.upload`` by its name
(``points``, ``points@2``) or id.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hpsearch.trainer import Context, Diverged, Trainer


class Data(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upload: str | None = Field(
        None, description="An uploaded NPZ (X, y): name, name@version or id; else synthetic."
    )
    n_samples: int = Field(400, ge=10, le=1_000_000)
    n_features: int = Field(20, ge=1, le=10_000)
    noise: float = Field(0.5, ge=0)
    validation: float = Field(0.25, gt=0, lt=1, description="Share of rows held out.")


class RidgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: Data = Data()
    alpha: float = Field(1.0, ge=0, description="L2 penalty on the weights.")
    learning_rate: float = Field(0.05, gt=0)
    steps: int = Field(100, ge=1, le=100_000, description="Gradient steps; one is reported each.")


class RidgeTrainer(Trainer):
    name = "ridge"
    version = "0.1.0"
    Config = RidgeConfig
    step_metrics = ("train_loss", "val_loss", "val_rmse")
    final_metrics = ("train_loss", "val_loss", "val_rmse", "train_seconds")

    def train(self, config: RidgeConfig, context: Context) -> Mapping[str, float]:  # type: ignore[override]
        started = time.perf_counter()
        X, y = _data(config.data, context)
        rng = np.random.default_rng(context.seed)
        order = rng.permutation(len(y))
        n_val = max(1, int(len(y) * config.data.validation))
        val, fit = order[:n_val], order[n_val:]
        mean, std = X[fit].mean(axis=0), X[fit].std(axis=0) + 1e-12
        X = (X - mean) / std
        w, b = np.zeros(X.shape[1]), 0.0
        metrics: dict[str, float] = {}
        for step in range(1, config.steps + 1):
            residual = X[fit] @ w + b - y[fit]
            grad_w = 2 * X[fit].T @ residual / len(fit) + 2 * config.alpha * w
            w -= config.learning_rate * grad_w
            b -= config.learning_rate * 2 * residual.mean()
            val_error = X[val] @ w + b - y[val]
            val_loss = float(np.mean(val_error**2))
            metrics = {
                "train_loss": float(np.mean(residual**2)),
                "val_loss": val_loss,
                "val_rmse": float(np.sqrt(val_loss)),
            }
            if not np.isfinite(metrics["train_loss"]):
                raise Diverged(f"train_loss is {metrics['train_loss']} at step {step}")
            if context.report(step, metrics):
                break
        return {**metrics, "train_seconds": time.perf_counter() - started}


def _data(data: Data, context: Context) -> tuple[np.ndarray, np.ndarray]:
    if data.upload is not None:
        with np.load(io.BytesIO(context.dataset(data.upload).content), allow_pickle=False) as npz:
            return np.asarray(npz["X"], dtype=float), np.asarray(npz["y"], dtype=float)
    # Synthetic: the same rows for every trial of a study (seeded by the data settings only).
    rng = np.random.default_rng([data.n_samples, data.n_features])
    X = rng.normal(size=(data.n_samples, data.n_features))
    true_w = rng.normal(size=data.n_features)
    return X, X @ true_w + data.noise * rng.normal(size=data.n_samples)
