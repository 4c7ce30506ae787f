"""When training ends early: stopping rules (normal completion) and divergence (failure).

Each rule is called once per epoch with that epoch's metrics and answers a reason to stop, or
None to go on. The epoch and step limits (``training.epochs``, ``stopping.max_iterations``)
are the training loop's own bounds, not rules.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from hpsearch.worker.engine.config import ConfigError, StoppingConfig

Metrics = dict[str, float]

# A loss this many times the initial one has left the basin it started in.
BLOW_UP_FACTOR = 1e6


class StopRule(ABC):
    """A criterion for ending a healthy run before ``training.epochs``."""

    @abstractmethod
    def __call__(self, epoch: int, metrics: Metrics) -> str | None:
        """Why to stop after this epoch, or None."""

    def state(self) -> dict[str, float]:
        """What the rule remembers of past epochs (a checkpoint keeps it)."""
        return {}

    def load_state(self, state: dict[str, float]) -> None:  # noqa: B027 (stateless by default)
        """Take back what `state` gave."""


class GradTol(StopRule):
    """Stop when ``grad_norm`` < tol: the parameters have (nearly) reached a stationary point."""

    def __init__(self, tol: float) -> None:
        self.tol = tol

    def __call__(self, epoch: int, metrics: Metrics) -> str | None:
        norm = metrics["grad_norm"]
        return f"grad_norm {norm:.3g} below grad_tol {self.tol:g}" if norm < self.tol else None


class Patience(StopRule):
    """Stop when the monitored metric has not improved for ``patience`` epochs in a row.

    An improvement beats the best value so far by more than ``min_delta``: lower for losses
    and ``val_rmse``, higher for ``val_accuracy``.
    """

    def __init__(self, patience: int, monitor: str = "val_loss", min_delta: float = 0.0) -> None:
        self.patience, self.monitor, self.min_delta = patience, monitor, min_delta
        self.sign = -1.0 if monitor in MAXIMISED else 1.0  # compare sign · value, lower wins
        self.best = math.inf
        self.waited = 0

    def __call__(self, epoch: int, metrics: Metrics) -> str | None:
        value = self.sign * metrics[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.waited = value, 0
            return None
        self.waited += 1
        if self.waited < self.patience:
            return None
        return f"{self.monitor} has not improved for {self.patience} epochs"

    def state(self) -> dict[str, float]:
        return {"best": self.best, "waited": self.waited}

    def load_state(self, state: dict[str, float]) -> None:
        self.best, self.waited = state["best"], int(state["waited"])


MAXIMISED = frozenset({"val_accuracy"})
# The metrics each task reports, and so the ones patience may watch.
MONITORABLE = {
    "classification": frozenset({"val_loss", "val_accuracy", "train_loss"}),
    "regression": frozenset({"val_loss", "val_rmse", "train_loss"}),
}


def stop_rules(config: StoppingConfig, task: str = "classification") -> list[StopRule]:
    """The rules ``training.stopping`` switches on; `ConfigError` if ``monitor`` is a metric
    the task does not report."""
    rules: list[StopRule] = []
    if config.grad_tol is not None:
        rules.append(GradTol(config.grad_tol))
    if config.patience is not None:
        if config.monitor not in MONITORABLE[task]:
            raise ConfigError("training.stopping.monitor", f"{task} reports no {config.monitor}")
        rules.append(Patience(config.patience, config.monitor, config.min_delta))
    return rules


class Divergence:
    """A non-finite metric, or a train loss above BLOW_UP_FACTOR × the loss before training.

    The reference is the loss of the initial parameters rather than after epoch 1, so a run
    that explodes within its first epoch is caught at epoch 1.
    """

    def __init__(self, initial_loss: float) -> None:
        # The floor of 1 keeps a near-perfect start from making a tiny uptick "divergence".
        self.initial_loss = initial_loss
        self.limit = BLOW_UP_FACTOR * max(initial_loss, 1.0)

    def __call__(self, epoch: int, metrics: Metrics) -> str | None:
        """Why this epoch counts as diverged, or None."""
        for key, value in metrics.items():
            if not math.isfinite(value):
                return f"diverged at epoch {epoch} ({key} {value})"
        loss = metrics["train_loss"]
        if loss > self.limit:
            return f"diverged at epoch {epoch} (train_loss {loss:.3g} > {self.limit:.3g})"
        return None
