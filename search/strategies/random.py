"""Random search: each trial's configuration drawn independently, reproducible by trial number."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hpsearch.search.space import CategoricalParam, FloatParam, IntParam, ParamSpec, Space
from hpsearch.search.strategies.base import Proposal, Strategy, TrialRecord


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


# Keeps the Latin hypercubes' seeds apart from the per-trial ones: no trial number is this big.
LATIN_HYPERCUBE = 2**32


def latin_hypercube_row(
    space: Space, ranges: Mapping[str, ParamSpec], seed: int, size: int, number: int
) -> dict[str, Any]:
    """Trial `number`'s row of a Latin hypercube of `size` rows over `ranges` (trials 0 to
    size - 1 make the first hypercube, the next `size` trials the second, ...): each numeric
    range (in log space where log) is cut into `size` strata with one row in each, and a
    categorical's choices come up equally often. Rows are seeded per hypercube and parameter,
    so every process draws the same hypercube and each its own rows of it."""
    block, row = divmod(number, size)
    config: dict[str, Any] = {}
    for name in space.params:
        if space.is_active(name, config):
            # One permutation of the strata per hypercube and parameter, shared by its rows.
            rng = np.random.default_rng([seed, LATIN_HYPERCUBE, block, zlib.crc32(name.encode())])
            stratum = rng.permutation(size)[row]
            jitter = rng.uniform(size=size)[row]
            config[name] = value_at(ranges[name], (stratum + jitter) / size)
    return config


def sample_param(param: ParamSpec, rng: np.random.Generator) -> Any:
    """One value of `param`, as a plain JSON-ready Python value."""
    if isinstance(param, CategoricalParam):
        return param.choices[int(rng.integers(len(param.choices)))]
    if isinstance(param, IntParam) and not param.log:
        steps = (param.high - param.low) // param.step
        return param.low + param.step * int(rng.integers(steps + 1))
    return value_at(param, float(rng.random()))


def value_at(param: ParamSpec, u: float) -> Any:
    """The value at fraction `u` in [0, 1) of `param`'s range, log-scaled where `log`, so that a
    uniform `u` gives a (log-)uniform draw; categoricals share [0, 1) evenly among their choices."""
    if isinstance(param, CategoricalParam):
        return param.choices[min(int(u * len(param.choices)), len(param.choices) - 1)]
    if isinstance(param, IntParam):
        if param.log:
            # Log-uniform over [low, high + 1) then floored gives each integer its log-width share.
            low, high = math.log(param.low), math.log(param.high + 1)
            # Clamped: exp(log(low)) may round to just below low.
            return min(max(int(math.exp(low + (high - low) * u)), param.low), param.high)
        steps = (param.high - param.low) // param.step
        return param.low + param.step * min(int(u * (steps + 1)), steps)
    if param.log:
        low, high = math.log(param.low), math.log(param.high)
        value = math.exp(low + (high - low) * u)
    else:
        value = param.low + (param.high - param.low) * u
    if param.step is not None:
        value = param.low + param.step * round((value - param.low) / param.step)
    return min(max(value, param.low), param.high)


def fraction_of(param: IntParam | FloatParam, value: float) -> float:
    """Where `value` lies in `param`'s range, as `value_at` measures it (0 at low, 1 at high)."""
    if param.low == param.high and not isinstance(param, IntParam):
        return 0.0  # a range narrowed to one point (a zero margin) has no inside to measure
    if param.log:
        high = param.high + 1 if isinstance(param, IntParam) else param.high
        return math.log(value / param.low) / math.log(high / param.low)
    if isinstance(param, IntParam):
        # The middle of the share of [0, 1) that value_at maps to this integer.
        steps = (param.high - param.low) // param.step
        return ((value - param.low) / param.step + 0.5) / (steps + 1)
    return (value - param.low) / (param.high - param.low)
