"""The one interface every search strategy implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hpsearch.search.space import Space


@dataclass(frozen=True)
class TrialRecord:
    """What a strategy may know of a trial: never a database row, only its facts."""

    number: int
    params: dict[str, Any]
    state: str
    values: tuple[float, ...] | None = None
    """The objectives' values, in the study's order; None unless the trial completed."""
    grid_index: int | None = None
    interrupted: bool = False
    """Failed for a cause outside its config (lost with its worker, cancelled, timed out):
    nothing to learn about the config from it. Diverged and errored trials are not."""
    lineage: dict[str, Any] | None = None
    """Population-based training's note on the trial (see `Proposal.lineage`)."""

    @property
    def value(self) -> float | None:
        """The first objective's value: the one single-objective strategies rank by."""
        return self.values[0] if self.values else None


@dataclass(frozen=True)
class Proposal:
    """A configuration to run; `grid_index` marks which grid point it claims, if any.

    `lineage` (population-based training) names the member the trial trains and its
    generation, and `parent`, the number of the trial whose final training state it starts
    from; it is stored with the trial, and a lost trial's retry keeps it."""

    params: dict[str, Any]
    grid_index: int | None = None
    lineage: dict[str, Any] | None = None


class Strategy(ABC):
    """Proposes configurations from a space and the study's history; holds no connection.

    A strategy is rebuilt from the study definition whenever the coordinator needs it, so
    everything it learns must come from `history` (every trial so far, in number order,
    queued and running ones included so that nothing is proposed twice).

    Example::

        space = Space({"x": FloatParam(type="float", low=0, high=1)})
        first = RandomStrategy(seed=0).ask(space, [], 2)
    """

    @abstractmethod
    def ask(self, space: Space, history: Sequence[TrialRecord], n: int) -> list[Proposal]:
        """Up to `n` new configurations; fewer (or none) when the strategy has no more."""

    def describe(self, space: Space, history: Sequence[TrialRecord]) -> dict[str, Any]:
        """What a study shows of the strategy's own state (stored with the study); none here."""
        return {}

    def cost(self, start: int, stop: int) -> float:
        """The training of trials `start` to `stop - 1`, counted in full trials: what an ETA
        weighs the trials left by. Every trial trains in full here."""
        return float(max(stop - start, 0))
