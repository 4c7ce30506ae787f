"""The training loop: one trial from a config, reporting each epoch to a callback."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from worker.engine.config import TrainConfig
from worker.engine.data import Splits, load_splits
from worker.engine.layers import Params
from worker.engine.losses import Loss, get_loss
from worker.engine.models import Sequential, build_model
from worker.engine.optimizers import Optimizer, State, build_optimizer
from worker.engine.stopping import Divergence, Metrics, StopRule, stop_rules

Report = Callable[[int, Metrics], bool | None]
Status = Literal["complete", "pruned", "diverged"]


@dataclass(frozen=True)
class TrainResult:
    """How a trial ended.

    ``metrics`` holds the last reported epoch's metrics plus ``train_seconds`` and, unless the
    run diverged or there is no test split, ``test_loss`` and ``test_accuracy``. ``reason``
    says why training stopped before ``training.epochs`` (None if it ran them all).
    ``history`` is every reported epoch's metrics; ``params`` the final parameters.
    """

    status: Status
    reason: str | None
    metrics: Metrics
    epochs: int
    history: list[Metrics] = field(default_factory=list)
    params: Params = field(default_factory=dict)


def _no_report(step: int, metrics: Metrics) -> None:
    return None


def _batches(n: int, batch_size: int | None, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Row indices of each batch of one epoch, freshly shuffled; one ordered batch if full."""
    if batch_size is None or batch_size >= n:
        yield np.arange(n)
        return
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _global_norm(grads: Params) -> float:
    """√(Σ ‖g‖²) over every parameter array."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


@dataclass
class Trainer:
    """The pieces of one trial, built from its config."""

    config: TrainConfig
    data: Splits
    model: Sequential
    loss: Loss
    optimizer: Optimizer

    @classmethod
    def from_config(cls, config: TrainConfig, data: Splits) -> Trainer:
        """Model, loss and optimizer as ``config`` names them, sized for ``data``."""
        model = build_model(config.model, data.n_features, data.n_classes)
        training = config.training
        return cls(config, data, model, get_loss(training.loss), build_optimizer(training))

    def evaluate(self, params: Params, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Mean loss and accuracy of ``params`` on (X, y)."""
        logits = self.model.predict(params, X)
        return self.loss.forward(logits, y), float(np.mean(logits.argmax(axis=1) == y))

    def run_epoch(
        self, params: Params, state: State, rng: np.random.Generator
    ) -> tuple[Params, State, float]:
        """One pass over the training split; also the mean over batches of the gradient norm."""
        batch_size = None if self.optimizer.full_batch else self.config.training.batch_size
        X, y = self.data.X_train, self.data.y_train
        norms = []
        for rows in _batches(len(y), batch_size, rng):
            logits, caches = self.model.forward(params, X[rows])
            batch_loss, grad_logits = self.loss.loss_and_grad(logits, y[rows])
            grads = self.model.backward(params, caches, grad_logits)
            norms.append(_global_norm(grads))
            if not math.isfinite(batch_loss):
                break  # the end-of-epoch check reports it; more steps only spread the NaNs
            params, state = self.optimizer.step(params, grads, state)
        return params, state, float(np.mean(norms))

    def epoch_metrics(self, params: Params, grad_norm: float) -> Metrics:
        """Losses of the end-of-epoch parameters on train and validation, and the step sizes."""
        train_loss, _ = self.evaluate(params, self.data.X_train, self.data.y_train)
        val_loss, val_accuracy = self.evaluate(params, self.data.X_val, self.data.y_val)
        return {
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "grad_norm": grad_norm,
            "learning_rate": self.optimizer.learning_rate,
        }

    def final_metrics(self, params: Params, last: Metrics, status: Status) -> Metrics:
        """The last epoch's metrics, plus test metrics when the parameters are worth testing."""
        metrics = dict(last)
        if status != "diverged" and len(self.data.y_test) > 0:
            test_loss, test_accuracy = self.evaluate(params, self.data.X_test, self.data.y_test)
            metrics.update(test_loss=test_loss, test_accuracy=test_accuracy)
        return metrics


def _first_reason(rules: list[StopRule], epoch: int, metrics: Metrics) -> str | None:
    # Every rule sees every epoch, so stateful rules (patience) never miss one.
    reasons = [rule(epoch, metrics) for rule in rules]
    return next((reason for reason in reasons if reason is not None), None)


def _seeded_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent streams for initialisation and shuffling: resizing the model leaves the
    batch order unchanged."""
    init, shuffle = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(init), np.random.default_rng(shuffle)


@dataclass
class _Watch:
    """Everything that may end the run after an epoch, asked in order of precedence."""

    divergence: Divergence
    report: Report
    rules: list[StopRule]

    def verdict(self, epoch: int, metrics: Metrics) -> tuple[Status, str] | None:
        """How this epoch ends the run, or None to go on. A diverged epoch is never reported."""
        if (reason := self.divergence(epoch, metrics)) is not None:
            return "diverged", reason
        if self.report(epoch, dict(metrics)):
            return "pruned", f"pruned at epoch {epoch}"
        if (reason := _first_reason(self.rules, epoch, metrics)) is not None:
            return "complete", reason
        return None


def _loop(trainer: Trainer, report: Report) -> TrainResult:
    training, data = trainer.config.training, trainer.data
    init_rng, shuffle_rng = _seeded_rngs(training.seed)
    params = trainer.model.init_params(init_rng)
    state = trainer.optimizer.init_state(params)
    initial_loss, _ = trainer.evaluate(params, data.X_train, data.y_train)
    watch = _Watch(Divergence(initial_loss), report, stop_rules(training.stopping))
    history: list[Metrics] = []
    verdict: tuple[Status, str | None] | None = None
    epoch = 0
    while verdict is None and epoch < training.epochs:
        epoch += 1
        started = time.perf_counter()
        params, state, grad_norm = trainer.run_epoch(params, state, shuffle_rng)
        metrics = trainer.epoch_metrics(params, grad_norm)
        metrics["epoch_seconds"] = time.perf_counter() - started
        verdict = watch.verdict(epoch, metrics)
        if verdict is None or verdict[0] != "diverged":
            history.append(metrics)
    status, reason = verdict or ("complete", None)
    metrics = trainer.final_metrics(params, history[-1] if history else {}, status)
    return TrainResult(status, reason, metrics, epoch, history, params)


def train(
    config: TrainConfig, data: Splits | None = None, report: Report | None = None
) -> TrainResult:
    """Train one trial: ``report(epoch, metrics)`` after every epoch (epochs count from 1).

    Per-epoch metrics: ``train_loss`` and ``val_loss`` (mean loss of the end-of-epoch
    parameters on the whole split), ``val_accuracy``, ``grad_norm`` (the mean over the epoch's
    batches of the global L2 norm of the batch gradient, taken before that batch's step; for
    ``gd`` the full gradient), ``learning_rate`` and ``epoch_seconds`` (the epoch's wall time,
    its evaluation included). ``report`` returning True prunes the trial. Divergence ends the
    trial with status "diverged"; it is never raised. The same config and seed give the same
    numbers, the two timings apart.
    """
    data = load_splits(config.dataset) if data is None else data
    started = time.perf_counter()
    # Overflow to inf/NaN is expected when a trial diverges; Divergence checks for it instead.
    with np.errstate(all="ignore"):
        result = _loop(Trainer.from_config(config, data), report or _no_report)
    seconds = time.perf_counter() - started
    return replace(result, metrics={**result.metrics, "train_seconds": seconds})
