"""Search spaces: named float, int and categorical parameters, some active only `when` others match.

A space is data plus the questions strategies ask of it (which parameters are active given the
values chosen so far, what a grid over it looks like). It samples nothing itself: sampling is a
strategy's business.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Condition = dict[str, list[Any]]

# Bounds beyond this lose integer precision as JSON numbers, and no setting needs them.
MAX_MAGNITUDE = 2**53
Bound = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
IntBound = Annotated[int, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    when: Condition | None = None
    values: list[Any] | None = Field(None, min_length=1, description="Explicit grid values.")


class FloatParam(_Param):
    type: Literal["float"]
    low: Bound
    high: Bound
    log: bool = False
    step: float | None = Field(None, gt=0)
    values: list[Bound] | None = Field(None, min_length=1, description="Explicit grid values.")

    @model_validator(mode="after")
    def _check_range(self) -> FloatParam:
        _check_bounds(self.low, self.high, self.log)
        return self

    def grid(self, n: int) -> list[float]:
        """`values`, or `n` points from low to high (log-spaced when log, on `step` if given)."""
        if self.values is not None:
            return [float(v) for v in self.values]
        if self.step is not None:
            count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            # Thinned by index, so that a fine step costs n points, not `count`.
            steps = np.linspace(0, count - 1, min(n, count)).round()
            points = self.low + self.step * steps
        elif self.log:
            points = np.geomspace(self.low, self.high, n)
        else:
            points = np.linspace(self.low, self.high, n)
        return [float(p) for p in points]


class IntParam(_Param):
    type: Literal["int"]
    low: IntBound
    high: IntBound
    step: int = Field(1, ge=1)
    log: bool = False
    values: list[IntBound] | None = Field(None, min_length=1, description="Explicit grid values.")

    @model_validator(mode="after")
    def _check_range(self) -> IntParam:
        _check_bounds(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("a log-scaled int parameter takes no step")
        return self

    def grid(self, n: int) -> list[int]:
        """`values`, or up to `n` distinct integers from low to high (log-spaced when log)."""
        if self.values is not None:
            return [int(v) for v in self.values]
        spaced = np.geomspace if self.log else np.linspace
        points = spaced(self.low, self.high, n)
        snapped = self.low + self.step * np.round((points - self.low) / self.step)
        return sorted({int(min(p, self.high)) for p in snapped})


class CategoricalParam(_Param):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)

    def grid(self, n: int) -> list[Any]:
        """Every choice (or `values`): a categorical grid is never thinned."""
        return list(self.values if self.values is not None else self.choices)


ParamSpec = FloatParam | IntParam | CategoricalParam
Param = Annotated[ParamSpec, Field(discriminator="type")]


def _check_bounds(low: float, high: float, log: bool) -> None:
    if low >= high:
        raise ValueError(f"low ({low}) must be less than high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log-scaled parameter needs low > 0, got {low}")


class Space:
    """Parameters in an order where every condition's parameters come before it."""

    def __init__(self, params: Mapping[str, ParamSpec]) -> None:
        self.params = dict(_conditions_first(params))
        self._names = list(self.params)
        # Of the parameters from position i on, the ones some later condition reads.
        self._read_later = [
            sorted({k for name in self._names[i:] for k in self.params[name].when or {}})
            for i in range(len(self._names) + 1)
        ]
        self._counts: dict[tuple, int] = {}

    def __len__(self) -> int:
        return len(self.params)

    def is_active(self, name: str, assigned: Mapping[str, Any]) -> bool:
        """Whether `name` takes a value, given the values assigned to the parameters before it."""
        when = self.params[name].when or {}
        return all(key in assigned and assigned[key] in allowed for key, allowed in when.items())

    def contains(self, config: Mapping[str, Any]) -> bool:
        """Whether `config` has exactly the active parameters, each within its range."""
        return self.mismatch(config) is None

    def mismatch(self, config: Mapping[str, Any]) -> tuple[str, str] | None:
        """Why `config` is not a point of the space, as (parameter, reason); None if it is."""
        assigned: dict[str, Any] = {}
        for name, param in self.params.items():
            if not self.is_active(name, assigned):
                if name in config:
                    return name, "is inactive here (its `when` condition does not hold)"
                continue
            if name not in config:
                return name, "is missing"
            if (reason := _outside(param, config[name])) is not None:
                return name, reason
            assigned[name] = config[name]
        extra = sorted(set(config) - set(assigned))
        return (extra[0], "is not a parameter of the space") if extra else None

    def grid_size(self, n: int) -> int:
        """How many points the grid over the active parameters has (`n` per numeric one)."""
        return self._count(0, {}, n)

    def grid_point(self, n: int, index: int) -> dict[str, Any]:
        """The grid's point at `index`, in a fixed order, found without listing the grid:
        a large grid costs memory for the points asked for only."""
        if not 0 <= index < self.grid_size(n):
            raise IndexError(f"grid point {index} of {self.grid_size(n)}")
        assigned: dict[str, Any] = {}
        for i, name in enumerate(self._names):
            if not self.is_active(name, assigned):
                continue
            for value in self.params[name].grid(n):
                block = self._count(i + 1, {**assigned, name: value}, n)
                if index < block:
                    assigned[name] = value
                    break
                index -= block
        return assigned

    def grid(self, n: int) -> Iterator[dict[str, Any]]:
        """Every point of the grid, in the order of `grid_point`."""
        return (self.grid_point(n, i) for i in range(self.grid_size(n)))

    def _count(self, position: int, assigned: dict[str, Any], n: int) -> int:
        """Grid points over the parameters from `position` on, given those assigned before.

        Memoised on the assigned values that later conditions read, so an unconditional space
        costs one pass per parameter, not the product of their sizes.
        """
        if position == len(self._names):
            return 1
        seen = [(k in assigned, assigned.get(k)) for k in self._read_later[position]]
        key = (position, n, json.dumps(seen, default=str))
        if key not in self._counts:
            name = self._names[position]
            if self.is_active(name, assigned):
                count = sum(
                    self._count(position + 1, {**assigned, name: value}, n)
                    for value in self.params[name].grid(n)
                )
            else:
                count = self._count(position + 1, assigned, n)
            self._counts[key] = count
        return self._counts[key]


def _outside(param: ParamSpec, value: Any) -> str | None:
    """Why `value` is not one `param` takes (not in its choices or range, or off its integer
    or step grid, which Optuna's distributions refuse too); None when it is one."""
    if isinstance(param, CategoricalParam):
        if value in param.choices or (param.values is not None and value in param.values):
            return None
        return f"{value!r} is not one of the choices {param.choices}"
    if param.values is not None and value in param.values:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} is not a number"
    if not param.low <= value <= param.high:
        return f"{value!r} is not within [{param.low}, {param.high}]"
    if isinstance(param, IntParam) and not float(value).is_integer():
        return f"{value!r} is not an integer"
    if param.step is not None and not param.log:
        steps = (value - param.low) / param.step
        if abs(steps - round(steps)) > 1e-8:
            return f"{value!r} is not on the step {param.step} from {param.low}"
    return None


def _conditions_first(params: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Topological order of `params` by their `when` conditions; errors name the parameter."""
    for name, param in params.items():
        for key in param.when or {}:
            if key not in params:
                raise ValueError(f"{name}: 'when' refers to '{key}', which is not in the space")
    placed: set[str] = set()
    pending = dict(params)
    while pending:
        ready = [n for n, p in pending.items() if set(p.when or {}) <= placed]
        if not ready:
            raise ValueError(f"{', '.join(pending)}: their 'when' conditions form a cycle")
        for name in ready:
            placed.add(name)
            yield name, pending.pop(name)
