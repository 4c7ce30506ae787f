"""Search spaces: named float, int and categorical parameters, some active only `when` others match.

A space is data plus the questions strategies ask of it (which parameters are active given the
values chosen so far, what a grid over it looks like). It samples nothing itself: sampling is a
strategy's business.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Condition = dict[str, list[Any]]


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    when: Condition | None = None
    values: list[Any] | None = Field(None, min_length=1, description="Explicit grid values.")


class FloatParam(_Param):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

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
            points = self.low + self.step * np.arange(count)
            if count > n:
                points = points[np.linspace(0, count - 1, n).round().astype(int)]
        elif self.log:
            points = np.geomspace(self.low, self.high, n)
        else:
            points = np.linspace(self.low, self.high, n)
        return [float(p) for p in points]


class IntParam(_Param):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

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

    def __len__(self) -> int:
        return len(self.params)

    def is_active(self, name: str, assigned: Mapping[str, Any]) -> bool:
        """Whether `name` takes a value, given the values assigned to the parameters before it."""
        when = self.params[name].when or {}
        return all(key in assigned and assigned[key] in allowed for key, allowed in when.items())

    def contains(self, config: Mapping[str, Any]) -> bool:
        """Whether `config` has exactly the active parameters, each within its range."""
        assigned: dict[str, Any] = {}
        for name, param in self.params.items():
            if not self.is_active(name, assigned):
                if name in config:
                    return False
                continue
            if name not in config or not _within(param, config[name]):
                return False
            assigned[name] = config[name]
        return set(config) == set(assigned)

    def grid(self, n: int) -> Iterator[dict[str, Any]]:
        """Every point of the grid over the active parameters, in a fixed order."""
        yield from self._expand(list(self.params), {}, n)

    def _expand(self, names: list[str], assigned: dict[str, Any], n: int) -> Iterator[dict]:
        if not names:
            yield dict(assigned)
            return
        name, rest = names[0], names[1:]
        if not self.is_active(name, assigned):
            yield from self._expand(rest, assigned, n)
            return
        for value in self.params[name].grid(n):
            yield from self._expand(rest, {**assigned, name: value}, n)


def _within(param: ParamSpec, value: Any) -> bool:
    if isinstance(param, CategoricalParam):
        return value in param.choices or (param.values is not None and value in param.values)
    if param.values is not None and value in param.values:
        return True
    return isinstance(value, int | float) and param.low <= value <= param.high


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
