"""Coarse-to-fine search: set a rough range, sample, evaluate, narrow the range, repeat.

Round 0 is a Latin hypercube over the whole space: each numeric parameter's range (in log space
for log parameters) is cut into `samples_per_round` equal strata with one sample in each, and a
categorical's choices come up equally often, so that a small first round still covers every
part of the space. When every trial of round r has finished, box r+1 is the range the best
`keep` fraction of its trials span, together with the best trial so far (so that the box never
narrows away from it), widened by `margin` of that range on each side and never leaving box r;
categorical choices narrow to those the kept trials used. Later rounds exploit: each sample is
drawn around the best trial so far, within the box (reflected at its edges), with a spread that
shrinks with the box. Trials past the last round keep sampling the last box.

The defaults (4 rounds sharing the budget, keep 0.25, margin 0.1) were measured against 3, 5, 6
and 8 rounds, keep 0.4, margin 0.25 (6 rounds), narrowing from every trial so far rather than the
round's, categoricals halving at most, more draws around the best, tighter spreads and centres
among the top 3, and centres on the best trial that made the same categorical choices
(bench/search.py, 60 trials, 40-80 seeds from 100): none beat them by more than the noise
(1.5-2.5 trials of standard error) on all three tasks. Fewer rounds narrow too late; more rounds
narrow on too few trials and lose the good region.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from hpsearch.search.space import CategoricalParam, IntParam, ParamSpec, Space
from hpsearch.search.strategies.base import Proposal, Strategy, TrialRecord
from hpsearch.search.strategies.random import fraction_of, latin_hypercube_row, value_at

Box = dict[str, ParamSpec]
FINISHED = ("complete", "pruned", "failed")
# A later round's numeric draws around the best trial: a normal with this standard deviation,
# as a fraction of the box's width. A quarter keeps most draws near the best point while the
# box's edges stay within two deviations, so the whole box is still explored.
SPREAD = 0.25
# How often a later round's draw keeps the best trial's categorical choice rather than drawing
# one of the box's choices at random.
KEEP_CHOICE = 0.5


class CoarseToFineStrategy(Strategy):
    """A space-filling first round, then rounds around the best trial in a shrinking box."""

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
        best = self.best(history)
        proposals = []
        for number in range(len(history), len(history) + n):
            box_index = self.round_of(number)
            if box_index >= len(boxes):
                break  # the round before is still running: its results decide the next box
            # Later rounds alternate exploiting the best trial with covering the box, whose
            # next narrowing then still reflects the whole box and not only the best's corner.
            if box_index == 0 or best is None or number % 2:
                config = self._stratified(space, boxes[box_index], number)
            else:
                config = self._around(space, boxes[box_index], best, number)
            proposals.append(Proposal(config))
        return proposals

    def describe(self, space: Space, history: Sequence[TrialRecord]) -> dict[str, Any]:
        """Every round's box so far, as plain data."""
        return {"boxes": [box_as_data(box) for box in self.boxes(space, history)]}

    def best(self, history: Sequence[TrialRecord]) -> TrialRecord | None:
        """The completed trial with the best value, or None before any has completed."""
        scored = self._ranked(history)
        return scored[0] if scored else None

    def boxes(self, space: Space, history: Sequence[TrialRecord]) -> list[Box]:
        """Box of every round whose box is known: round 0's, and one per finished round."""
        boxes: list[Box] = [dict(space.params)]
        for r in range(self.rounds - 1):
            members = [t for t in history if self.round_of(t.number) == r]
            if len(members) < self.samples_per_round or any(
                t.state not in FINISHED for t in members
            ):
                break
            so_far = self.best([t for t in history if self.round_of(t.number) <= r])
            boxes.append(self._narrow(boxes[-1], members, so_far))
        return boxes

    def _ranked(self, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
        scored = [t for t in trials if t.state == "complete" and t.value is not None]
        return sorted(scored, key=lambda t: t.value if self.minimize else -t.value)  # type: ignore[operator]

    def _rng(self, name: str, *keys: int) -> np.random.Generator:
        # Seeded by trial number or round and parameter name, as random search is: trial k's
        # draw depends neither on the batching nor on the order the parameters are listed in.
        return np.random.default_rng([self.seed, *keys, zlib.crc32(name.encode())])

    def _stratified(self, space: Space, box: Box, number: int) -> dict[str, Any]:
        """Trial `number`'s row of its round's Latin hypercube over `box`."""
        return latin_hypercube_row(space, box, self.seed, self.samples_per_round, number)

    def _around(self, space: Space, box: Box, best: TrialRecord, number: int) -> dict[str, Any]:
        """Trial `number`'s draw inside `box`, centred on the `best` trial's values."""
        config: dict[str, Any] = {}
        for name in space.params:
            if not space.is_active(name, config):
                continue
            param, rng = box[name], self._rng(name, number)
            centre = best.params.get(name)
            if isinstance(param, CategoricalParam):
                keep = centre in param.choices and rng.uniform() < KEEP_CHOICE
                config[name] = centre if keep else value_at(param, rng.uniform())
            elif centre is None:  # inactive in the best trial: nothing to centre on
                config[name] = value_at(param, rng.uniform())
            else:
                at = reflect(rng.normal(fraction_of(param, centre), SPREAD))
                config[name] = value_at(param, min(at, math.nextafter(1.0, 0.0)))
        return config

    def _narrow(self, box: Box, members: Sequence[TrialRecord], so_far: TrialRecord | None) -> Box:
        scored = self._ranked(members)
        if not scored:
            return box  # nothing learned this round: search the same box again
        kept = scored[: max(1, math.ceil(self.keep * len(scored)))]
        if so_far is not None and so_far not in kept:
            kept.append(so_far)
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


def reflect(u: float) -> float:
    """``u`` folded into [0, 1] as a mirror at each end would: a draw past an edge of the box
    lands as far inside it. Clamped, every such draw would be the edge's own value, and
    training being deterministic, each repeat a trial wasted (a quarter of a later round's
    trials on bench/search.py's digits task, whose best sat on the box's edge)."""
    u = abs(u) % 2.0
    return 2.0 - u if u > 1.0 else u


def box_as_data(box: Box) -> dict[str, dict[str, Any]]:
    """A box as plain JSON: ``{"low", "high"}`` per numeric parameter, ``{"choices"}`` else."""
    return {
        name: {"choices": p.choices}
        if isinstance(p, CategoricalParam)
        else {"low": p.low, "high": p.high, "log": p.log}
        for name, p in box.items()
    }
