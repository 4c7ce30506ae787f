"""Coarse-to-fine search: set a rough range, sample at random, evaluate, narrow the range, repeat.

Round r samples `samples_per_round` configurations at random inside box r. When every trial of
round r has finished, box r+1 is the range the best `keep` fraction of its trials span (in log
space for log parameters), widened by `margin` of that range on each side and never leaving
box r; categorical choices narrow to those the kept trials used. Trials past the last round
keep sampling the last box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from search.space import CategoricalParam, IntParam, ParamSpec, Space
from search.strategies.base import Proposal, Strategy, TrialRecord
from search.strategies.random import sample_config

Box = dict[str, ParamSpec]
FINISHED = ("complete", "pruned", "failed")


class CoarseToFineStrategy(Strategy):
    """Rounds of random samples in a box that shrinks around the best trials of each round."""

    def __init__(
        self,
        *,
        seed: int,
        rounds: int,
        samples_per_round: int,
        keep: float,
        margin: float,
        direction: str,
    ) -> None:
        self.seed = seed
        self.rounds = rounds
        self.samples_per_round = samples_per_round
        self.keep = keep
        self.margin = margin
        self.minimize = direction == "minimize"

    def round_of(self, number: int) -> int:
        """The round trial `number` belongs to (trials past the last stay in the last)."""
        return min(number // self.samples_per_round, self.rounds - 1)

    def ask(self, space: Space, history: Sequence[TrialRecord], n: int) -> list[Proposal]:
        boxes = self.boxes(space, history)
        proposals = []
        for number in range(len(history), len(history) + n):
            box_index = self.round_of(number)
            if box_index >= len(boxes):
                break  # the round before is still running: its results decide the next box
            proposals.append(Proposal(sample_config(space, boxes[box_index], self.seed, number)))
        return proposals

    def describe(self, space: Space, history: Sequence[TrialRecord]) -> dict[str, Any]:
        """Every round's box so far, as plain data."""
        return {"boxes": [box_as_data(box) for box in self.boxes(space, history)]}

    def boxes(self, space: Space, history: Sequence[TrialRecord]) -> list[Box]:
        """Box of every round whose box is known: round 0's, and one per finished round."""
        boxes: list[Box] = [dict(space.params)]
        for r in range(self.rounds - 1):
            members = [t for t in history if self.round_of(t.number) == r]
            if len(members) < self.samples_per_round or any(
                t.state not in FINISHED for t in members
            ):
                break
            boxes.append(self._narrow(boxes[-1], members))
        return boxes

    def _narrow(self, box: Box, members: Sequence[TrialRecord]) -> Box:
        scored = [t for t in members if t.state == "complete" and t.value is not None]
        if not scored:
            return box  # nothing learned this round: search the same box again
        scored.sort(key=lambda t: t.value if self.minimize else -t.value)  # type: ignore[operator]
        kept = scored[: max(1, math.ceil(self.keep * len(scored)))]
        narrowed: Box = {}
        for name, param in box.items():
            values = [t.params[name] for t in kept if name in t.params]
            narrowed[name] = self._narrow_param(param, values) if values else param
        return narrowed

    def _narrow_param(self, param: ParamSpec, values: list[Any]) -> ParamSpec:
        if isinstance(param, CategoricalParam):
            used = [c for c in param.choices if c in values]
            return param.model_copy(update={"choices": used, "values": None})
        to, back = (math.log, math.exp) if param.log else (float, float)
        low, high = to(param.low), to(param.high)
        lo, hi = to(min(values)), to(max(values))
        # A range of one point would end the search there; widen it by the margin of the box.
        pad = self.margin * ((hi - lo) if hi > lo else (high - low))
        new_low, new_high = back(max(low, lo - pad)), back(min(high, hi + pad))
        step = param.step
        if step is not None:
            # Stay on the parameter's grid: bounds move outwards to the nearest steps.
            new_low = param.low + step * math.floor((new_low - param.low) / step + 1e-9)
            new_high = min(
                param.high, param.low + step * math.ceil((new_high - param.low) / step - 1e-9)
            )
        if isinstance(param, IntParam):
            new_low, new_high = int(new_low), int(new_high)
        return param.model_copy(update={"low": new_low, "high": new_high, "values": None})


def box_as_data(box: Box) -> dict[str, dict[str, Any]]:
    """A box as plain JSON: ``{"low", "high"}`` per numeric parameter, ``{"choices"}`` else."""
    return {
        name: {"choices": p.choices}
        if isinstance(p, CategoricalParam)
        else {"low": p.low, "high": p.high, "log": p.log}
        for name, p in box.items()
    }
