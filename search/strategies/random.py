"""Random search: each trial's configuration drawn independently, reproducible by trial number."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from search.space import CategoricalParam, IntParam, ParamSpec, Space
from search.strategies.base import Proposal, Strategy, TrialRecord


class RandomStrategy(Strategy):
    """Uniform (log-uniform where `log`) samples seeded by (seed, trial number, parameter).

    Seeding per trial number, not per call, makes trial k's configuration the same whatever
    the parallelism and the order in which earlier trials finished; seeding per parameter name
    makes it independent of the order the study file lists the parameters in.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def ask(self, space: Space, history: Sequence[TrialRecord], n: int) -> list[Proposal]:
        start = len(history)
        return [Proposal(self.sample(space, number)) for number in range(start, start + n)]

    def sample(self, space: Space, number: int) -> dict[str, Any]:
        """The configuration of trial `number`."""
        return sample_config(space, space.params, self.seed, number)


def sample_config(
    space: Space, ranges: Mapping[str, ParamSpec], seed: int, number: int
) -> dict[str, Any]:
    """Trial `number`'s draw of every active parameter of `space` from `ranges` (the space's
    own parameters, or narrowed copies of them)."""
    config: dict[str, Any] = {}
    for name in space.params:
        if space.is_active(name, config):
            rng = np.random.default_rng([seed, number, zlib.crc32(name.encode())])
            config[name] = sample_param(ranges[name], rng)
    return config


def sample_param(param: ParamSpec, rng: np.random.Generator) -> Any:
    """One value of `param`, as a plain JSON-ready Python value."""
    if isinstance(param, CategoricalParam):
        return param.choices[int(rng.integers(len(param.choices)))]
    if isinstance(param, IntParam):
        if param.log:
            # Log-uniform over [low, high + 1) then floored gives each integer its log-width share.
            drawn = math.exp(rng.uniform(math.log(param.low), math.log(param.high + 1)))
            return min(int(drawn), param.high)
        steps = (param.high - param.low) // param.step
        return param.low + param.step * int(rng.integers(steps + 1))
    if param.log:
        value = math.exp(rng.uniform(math.log(param.low), math.log(param.high)))
    else:
        value = float(rng.uniform(param.low, param.high))
    if param.step is not None:
        value = param.low + param.step * round((value - param.low) / param.step)
    return min(max(value, param.low), param.high)
