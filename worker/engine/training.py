"""The training loop: one trial from a config, reporting each epoch to a callback.

Speed comes from doing once what need not be done per step: the training split is held as
augmented rows ([x, 1], in ``training.dtype``) with its targets encoded; each epoch gathers it
in shuffled order into two preallocated arrays of which every batch is a fixed view, and the
model has its work arrays for each batch size. A step is then the model's in-place forward and
backward, one BLAS dot for the gradient norm and the optimizer's whole-vector update: no
allocation, a few dozen NumPy calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal

import numpy as np

from hpsearch.worker.engine import checkpoint
from hpsearch.worker.engine.config import ConfigError, TrainConfig
from hpsearch.worker.engine.data import Splits, load_splits
from hpsearch.worker.engine.initializers import get_initializer
from hpsearch.worker.engine.losses import encode_targets, get_loss
from hpsearch.worker.engine.models import (
    EVAL_CHUNK,
    Network,
    Workspace,
    augment,
    build_model,
    resolve_loss,
)
from hpsearch.worker.engine.optimizers import build_optimizer, flush_period, flush_subnormals
from hpsearch.worker.engine.schedules import build_schedule
from hpsearch.worker.engine.stopping import Divergence, Metrics, StopRule, stop_rules

Array = np.ndarray
Report = Callable[[int, Metrics], bool | None]
# Called after every epoch that does not end the run, with the epoch and a function that
# serializes the run's state then (it must be called before the callback returns).
Checkpointer = Callable[[int, Callable[[], bytes]], None]
Status = Literal["complete", "pruned", "diverged"]
Batch = tuple[Array, Array, Workspace]

LSUV_ROWS = 1024  # training rows LSUV calibrates on


@dataclass(frozen=True)
class TrainResult:
    """How a trial ended.

    ``metrics`` holds the last reported epoch's metrics plus ``train_seconds`` and, unless the
    run diverged or there is no test split, ``test_loss`` and ``test_accuracy`` (or
    ``test_rmse``). ``reason`` says why training stopped before ``training.epochs`` (None if
    it ran them all). ``history`` is every reported epoch's metrics; ``params`` the final
    parameters by name (copies), ``buffers`` batch norm's running statistics, ``steps`` the
    optimizer steps taken.
    """

    status: Status
    reason: str | None
    metrics: Metrics
    epochs: int
    history: list[Metrics] = field(default_factory=list)
    params: dict[str, Array] = field(default_factory=dict)
    buffers: dict[str, Array] = field(default_factory=dict)
    steps: int = 0


def _no_report(step: int, metrics: Metrics) -> None:
    return None


class Split:
    """One split, ready for the model: augmented rows, encoded targets, raw labels/values.

    ``every_epoch`` (the validation split) keeps its evaluation chunks as C-contiguous
    feature-major copies, which the model and the loss read faster than transposed views
    (2,000 rows, 64-128-128-10: about 30 us an evaluation for the first product, and the
    loss's dot copies nothing); other splits, evaluated once or twice, keep views.
    """

    def __init__(self, X: Array, y: Array, net: Network, task: str, every_epoch: bool = False):
        self.rows = augment(X, net.dtype)
        self.targets = encode_targets(y, net.n_outputs, task, net.dtype)
        self.y = y
        self.every_epoch = every_epoch
        self.chunks: list[tuple[Array, Array, Array, Workspace]] | None = None

    def __len__(self) -> int:
        return len(self.y)

    def eval_chunks(self, net: Network) -> list[tuple[Array, Array, Array, Workspace]]:
        """Feature-major views of the split in evaluation-sized pieces, made once."""
        if self.chunks is None:
            self.chunks = []
            for start in range(0, len(self), EVAL_CHUNK):
                end = min(start + EVAL_CHUNK, len(self))
                work = net.workspace(end - start, train=False)
                piece = (self.rows[start:end].T, self.targets[start:end].T, self.y[start:end])
                if self.every_epoch:
                    piece = (*map(np.ascontiguousarray, piece[:2]), piece[2])
                self.chunks.append((*piece, work))
        return self.chunks


def _batch_starts(n: int, batch: int, batch_norm: bool) -> list[int]:
    starts = list(range(0, n, batch))
    # A batch of one has no batch statistics: fold a lone last row into the batch before it.
    if batch_norm and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return starts


def _seeded_rngs(seed: int) -> list[np.random.Generator]:
    """Independent streams for initialisation, shuffling and dropout: resizing the model
    leaves the batch order unchanged."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]


class Trainer:
    """The pieces of one trial, built from its config and sized for its data."""

    def __init__(self, config: TrainConfig, data: Splits) -> None:
        model, training = config.model, config.training
        self.config, self.task = config, data.task
        loss_name, n_outputs = resolve_loss(model.type, training.loss, data.task, data.n_classes)
        self.loss = get_loss(loss_name)
        self.optimizer = build_optimizer(training)
        self.schedule = build_schedule(
            training.schedule, self.optimizer.learning_rate, training.epochs
        )
        self.rules: list[StopRule] = stop_rules(training.stopping, data.task)
        self.net = build_model(model, data.n_features, n_outputs, training.dtype)
        self.train_split = Split(data.X_train, data.y_train, self.net, data.task)
        self.val_split = Split(data.X_val, data.y_val, self.net, data.task, every_epoch=True)
        self.test_split = Split(data.X_test, data.y_test, self.net, data.task)
        self.batch_size = self._batch_size()
        init_rng, self.shuffle_rng, self.net.dropout_rng = _seeded_rngs(training.seed)
        initializer = get_initializer(model.init, model.init_scale)
        sample = None
        if initializer.data_dependent:  # LSUV: calibrate on random training rows
            sample = data.X_train[init_rng.permutation(len(data.X_train))[:LSUV_ROWS]]
        self.net.init(initializer, init_rng, sample)
        self._prepare_batches()
        # NAG evaluates gradients away from the weights: the model then reads a separate vector.
        apart = self.optimizer.looks_ahead
        self.weights = self.net.flat.copy() if apart else self.net.flat
        self.state = self.optimizer.init_state(self.weights)
        # Every array on the shortest period: a moment can also be born tiny (g² of a tiny g).
        self.flush_every = min(map(flush_period, [1.0, *self.optimizer.decays.values()]))
        self.flushed = [self.weights, *(self.state[name] for name in self.optimizer.decays)]
        self.steps = 0

    def _batch_size(self) -> int:
        training, n = self.config.training, len(self.train_split)
        full = self.optimizer.full_batch or training.batch_size is None
        size = n if full else min(training.batch_size, n)
        if self.config.model.batch_norm and size == 1:
            raise ConfigError("training.batch_size", "batch norm needs at least 2 rows a batch")
        return size

    def _prepare_batches(self) -> None:
        """The epoch arrays (an unshuffled full batch needs none) and every batch's views.

        A batch's targets are a C-contiguous (k, B) block of ``target_blocks``, which
        `_block_targets` fills from the epoch's rows of targets: the loss reads them a
        microsecond a step faster than a transposed view, and its dot needs no copy of them.
        """
        split, n = self.train_split, len(self.train_split)
        self.shuffle = self.batch_size < n
        rows, targets = split.rows, split.targets
        if self.shuffle:
            rows, targets = np.empty_like(rows), np.empty_like(targets)
        self.epoch_rows, self.epoch_targets = rows, targets
        starts = _batch_starts(n, self.batch_size, self.config.model.batch_norm)
        ends = [*starts[1:], n]
        k = targets.shape[1]
        self.target_blocks = np.empty(n * k, targets.dtype)
        # Runs of equal-size batches, each filled by one copy: (first row, batch size, batches).
        self.target_runs: list[tuple[int, int, int]] = []
        for start, end in zip(starts, ends, strict=True):
            run = self.target_runs[-1] if self.target_runs else None
            if run is not None and run[1] == end - start:
                self.target_runs[-1] = (run[0], run[1], run[2] + 1)
            else:
                self.target_runs.append((start, end - start, 1))
        self.batches: list[Batch] = [
            (
                rows[start:end].T,
                self.target_blocks[start * k : end * k].reshape(k, end - start),
                self.net.workspace(end - start, train=True),
            )
            for start, end in zip(starts, ends, strict=True)
        ]
        self._block_targets()

    def _block_targets(self) -> None:
        """Copy the epoch's targets, transposed batch by batch, into ``target_blocks``."""
        targets, k = self.epoch_targets, self.epoch_targets.shape[1]
        for start, size, count in self.target_runs:
            end = start + size * count
            blocks = self.target_blocks[start * k : end * k].reshape(count, k, size)
            np.copyto(blocks, targets[start:end].reshape(count, size, k).transpose(0, 2, 1))

    def _shuffle(self) -> None:
        """Gather the split in a fresh order into the epoch arrays: the batches' views see it.

        One gather an epoch costs less than one per step (measured): the rows are read in one
        sweep and the batches then read them sequentially.
        """
        order = self.shuffle_rng.permutation(len(self.train_split))
        # mode="clip" lets take write straight into `out` (the indices are valid anyway).
        np.take(self.train_split.rows, order, axis=0, out=self.epoch_rows, mode="clip")
        np.take(self.train_split.targets, order, axis=0, out=self.epoch_targets, mode="clip")
        self._block_targets()

    def run_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training split: its train_loss and mean gradient norm.

        The hot loop, kept whole in one function: every call and lookup in it runs per step.
        """
        self.optimizer.learning_rate = self.schedule(epoch)
        if self.shuffle:
            self._shuffle()
        limit = self.config.training.stopping.max_iterations or math.inf
        net, loss, optimizer, state = self.net, self.loss, self.optimizer, self.state
        weights, flat, grad = self.weights, self.net.flat, self.net.grad
        total = norms = 0.0
        seen = steps = 0
        looks_ahead = optimizer.looks_ahead
        for x, t, work in self.batches:
            if looks_ahead:
                optimizer.lookahead(weights, state, out=flat)
            logits = net.forward(x, work, "train")
            total += loss.loss_and_grad(logits, t, logits)
            net.backward(x, logits, work)
            squared = float(np.dot(grad, grad))
            if not math.isfinite(squared):  # more steps would only spread the NaNs
                norms, steps = math.inf, steps + 1
                break
            norms += math.sqrt(squared)
            optimizer.step(weights, grad, state)
            steps, seen = steps + 1, seen + work.batch
            self.steps += 1
            if self.steps % self.flush_every == 0:
                self._flush()
            if self.steps >= limit:
                break
        if weights is not flat:
            np.copyto(flat, weights)
        return (total / max(seen, 1) if loss.mean else total), norms / max(steps, 1)

    def _flush(self) -> None:
        for array in self.flushed:
            flush_subnormals(array)

    def evaluate(self, split: Split) -> tuple[float, float]:
        """Loss over the split (mean, or the sum for rss) and accuracy or RMSE."""
        total = hits = squares = 0.0
        for x, t, y, work in split.eval_chunks(self.net):
            logits = self.net.forward(x, work, "eval")
            if self.task == "classification":
                labels = logits[0] > 0 if len(logits) == 1 else logits.argmax(axis=0)
                hits += np.count_nonzero(labels == y)
            else:
                squares += float(np.sum(np.square(logits[0] - y)))
            total += self.loss.loss_and_grad(logits, t, logits)  # the gradient goes unused
        n = max(len(split), 1)
        quality = hits / n if self.task == "classification" else math.sqrt(squares / n)
        return (total / n if self.loss.mean else total), quality

    def epoch_metrics(self, epoch: int) -> Metrics:
        """Train the epoch and measure it; ``train_loss`` is over the epoch's batches."""
        started = time.perf_counter()
        train_loss, grad_norm = self.run_epoch(epoch)
        val_loss, val_quality = self.evaluate(self.val_split)
        quality = "val_accuracy" if self.task == "classification" else "val_rmse"
        return {
            "train_loss": float(train_loss),
            "val_loss": float(val_loss),
            quality: float(val_quality),
            "grad_norm": float(grad_norm),
            "learning_rate": float(self.optimizer.learning_rate),
            "epoch_seconds": time.perf_counter() - started,
        }

    def final_metrics(self, last: Metrics, status: Status) -> Metrics:
        """The last epoch's metrics, plus test metrics when the parameters are worth testing."""
        metrics = dict(last)
        if status != "diverged" and len(self.test_split) > 0:
            test_loss, quality = self.evaluate(self.test_split)
            name = "test_accuracy" if self.task == "classification" else "test_rmse"
            metrics.update({"test_loss": float(test_loss), name: float(quality)})
        return metrics

    def limit_reason(self) -> str | None:
        limit = self.config.training.stopping.max_iterations
        return f"max_iterations {limit} reached" if limit and self.steps >= limit else None


def _first_reason(rules: list[StopRule], epoch: int, metrics: Metrics) -> str | None:
    # Every rule sees every epoch, so stateful rules (patience) never miss one.
    reasons = [rule(epoch, metrics) for rule in rules]
    return next((reason for reason in reasons if reason is not None), None)


@dataclass
class _Watch:
    """Everything that may end the run after an epoch, asked in order of precedence."""

    trainer: Trainer
    divergence: Divergence
    report: Report

    def verdict(self, epoch: int, metrics: Metrics) -> tuple[Status, str] | None:
        """How this epoch ends the run, or None to go on. A diverged epoch is never reported."""
        if (reason := self.divergence(epoch, metrics)) is not None:
            return "diverged", reason
        if self.report(epoch, dict(metrics)):
            return "pruned", f"pruned at epoch {epoch}"
        reason = _first_reason(self.trainer.rules, epoch, metrics) or self.trainer.limit_reason()
        return None if reason is None else ("complete", reason)


def _loop(
    trainer: Trainer, report: Report, resume: bytes | None, keep: Checkpointer | None
) -> TrainResult:
    if resume is None:
        initial_loss, _ = trainer.evaluate(trainer.train_split)
        divergence, history, epoch = Divergence(initial_loss), [], 0
    else:
        resumed = checkpoint.restore(trainer, resume)
        divergence, history, epoch = resumed.divergence, resumed.history, resumed.epoch
    watch = _Watch(trainer, divergence, report)
    verdict: tuple[Status, str] | None = None
    while verdict is None and epoch < trainer.config.training.epochs:
        epoch += 1
        metrics = trainer.epoch_metrics(epoch)
        verdict = watch.verdict(epoch, metrics)
        if verdict is None or verdict[0] != "diverged":
            history.append(metrics)
        if verdict is None and keep is not None:
            keep(epoch, partial(checkpoint.save, trainer, epoch, history, divergence))
    status, reason = verdict or ("complete", None)
    metrics = trainer.final_metrics(history[-1] if history else {}, status)
    params = {name: value.copy() for name, value in trainer.net.params.items()}
    buffers = {name: value.copy() for name, value in trainer.net.buffers().items()}
    return TrainResult(status, reason, metrics, epoch, history, params, buffers, trainer.steps)


def evaluate_weights(blob: bytes, data: Splits | None = None) -> Metrics:
    """A weights file's model (`checkpoint.save_weights`) measured on its config's validation
    and test splits: the metrics its trial reported, computed again."""
    config, arrays = checkpoint.read_weights(blob)
    data = load_splits(config.dataset) if data is None else data
    with np.errstate(all="ignore"):
        trainer = Trainer(config, data)
        checkpoint.load_weights(trainer, arrays)
        val_loss, val_quality = trainer.evaluate(trainer.val_split)
        quality = "val_accuracy" if trainer.task == "classification" else "val_rmse"
        metrics = {"val_loss": float(val_loss), quality: float(val_quality)}
        return trainer.final_metrics(metrics, "complete")


def train(
    config: TrainConfig,
    data: Splits | None = None,
    report: Report | None = None,
    *,
    resume: bytes | None = None,
    on_checkpoint: Checkpointer | None = None,
    initial_weights: bytes | None = None,
) -> TrainResult:
    """Train one trial: ``report(epoch, metrics)`` after every epoch (epochs count from 1).

    Per-epoch metrics: ``train_loss`` (the loss of the epoch's training batches as each was
    seen, in training mode, over the whole split: the mean per sample, or the sum for rss),
    ``val_loss`` (the end-of-epoch parameters on the validation split, evaluation mode),
    ``val_accuracy`` (classification) or ``val_rmse`` (regression), ``grad_norm`` (the mean
    over the epoch's steps of the global L2 norm of the loss gradient, weight decay not
    included), ``learning_rate`` (the epoch's η) and ``epoch_seconds`` (the epoch's wall time,
    its validation included). ``report`` returning True prunes the trial. Divergence (NaN/inf,
    or a train loss 10⁶ times the initial one) ends the trial with status "diverged"; it is
    never raised. The same config and seed give the same numbers, the two timings apart.

    ``on_checkpoint(epoch, save)`` is offered a checkpoint after every epoch that does not end
    the run (``save()`` gives it as bytes, see `checkpoint`); ``resume`` continues the run from
    such bytes, reporting only the epochs after it: the result, history included, is the run's
    that never stopped. A checkpoint from another engine or config raises `CheckpointError`.
    ``initial_weights`` (`checkpoint.save_weights` bytes of the same model) replace the
    initializer's draw: training goes on from a trained model, with a fresh optimizer.
    """
    data = load_splits(config.dataset) if data is None else data
    started = time.perf_counter()
    # Overflow to inf/NaN is expected when a trial diverges; Divergence checks for it instead.
    with np.errstate(all="ignore"):
        trainer = Trainer(config, data)
        if initial_weights is not None:
            checkpoint.load_weights(trainer, checkpoint.read_weights(initial_weights)[1])
        result = _loop(trainer, report or _no_report, resume, on_checkpoint)
    seconds = time.perf_counter() - started
    return replace(result, metrics={**result.metrics, "train_seconds": seconds})
