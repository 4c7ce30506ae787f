"""Pruners: at each epoch a running trial reports, decide whether it is worth finishing.

Pure: a pruner sees the trial's value at a step and the other trials' curves (trial number ->
{step: value} of the objective metric), never the database.
"""

from __future__ import annotations

import math
import statistics
from abc import ABC, abstractmethod
from collections.abc import Mapping

Curve = Mapping[int, float]


class Pruner(ABC):
    """Stops unpromising trials early; a pruned trial keeps its curve and counts in the budget."""

    #: Whether the pruner compares against running trials too, not only completed ones.
    uses_running_trials = False

    def __init__(self, direction: str) -> None:
        self.minimize = direction == "minimize"

    @abstractmethod
    def should_prune(
        self, number: int, step: int, value: float, others: Mapping[int, Curve]
    ) -> bool:
        """Whether trial `number`, at `step` with `value`, should stop now."""

    def _worse(self, a: float, b: float) -> bool:
        return a > b if self.minimize else a < b


class NoPruner(Pruner):
    """Every trial runs to its own end."""

    def should_prune(
        self, number: int, step: int, value: float, others: Mapping[int, Curve]
    ) -> bool:
        return False


class MedianPruner(Pruner):
    """Prune a trial worse than the median of completed trials at the same step.

    Not before `warmup_epochs` have passed, nor before `min_trials` completed trials reached
    that step (as Optuna's MedianPruner).
    """

    def __init__(self, direction: str, *, warmup_epochs: int, min_trials: int) -> None:
        super().__init__(direction)
        self.warmup_epochs = warmup_epochs
        self.min_trials = min_trials

    def should_prune(
        self, number: int, step: int, value: float, others: Mapping[int, Curve]
    ) -> bool:
        if step <= self.warmup_epochs:
            return False
        at_step = [curve[step] for n, curve in others.items() if n != number and step in curve]
        if len(at_step) < self.min_trials:
            return False
        return math.isnan(value) or self._worse(value, statistics.median(at_step))


class HyperbandPruner(Pruner):
    """Hyperband: successive halving in brackets that start pruning at different epochs.

    Trial `number` belongs to bracket ``number % brackets``; bracket s has rungs at
    ``min_epochs · η^(s+k)`` for k = 0, 1, ... At a rung a trial goes on only if it ranks in
    the best 1/η of the trials of its bracket that reached the rung (itself included), as in
    Optuna's SuccessiveHalvingPruner; running trials count, as in asynchronous halving.
    """

    uses_running_trials = True

    def __init__(
        self, direction: str, *, min_epochs: int, max_epochs: int, reduction_factor: int
    ) -> None:
        super().__init__(direction)
        self.min_epochs = min_epochs
        self.eta = reduction_factor
        ratio = max(max_epochs / min_epochs, 1.0)
        self.brackets = int(math.floor(math.log(ratio, reduction_factor) + 1e-9)) + 1

    def is_rung(self, bracket: int, step: int) -> bool:
        """Whether trials of `bracket` are compared at `step` (``min_epochs · η^(bracket+k)``)."""
        times, rest = divmod(step, self.min_epochs * self.eta**bracket)
        if rest or times < 1:
            return False
        while times % self.eta == 0:
            times //= self.eta
        return times == 1

    def should_prune(
        self, number: int, step: int, value: float, others: Mapping[int, Curve]
    ) -> bool:
        bracket = number % self.brackets
        if not self.is_rung(bracket, step):
            return False
        if math.isnan(value):
            return True
        competing = [
            curve[step]
            for n, curve in others.items()
            if n != number and n % self.brackets == bracket and step in curve
        ]
        ranked = sorted([value, *competing], reverse=not self.minimize)
        cutoff = ranked[max(len(ranked) // self.eta - 1, 0)]
        return self._worse(value, cutoff)
