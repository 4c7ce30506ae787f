"""The study file: one YAML or JSON document, validated with errors that name the field.

`dataset`, `model` and `training` form the base config (the engine's `TrainConfig`); the keys
of `space` are dotted paths into it. A trial's configuration is the base with its sampled
values written over those paths.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from search.space import Param, Space
from search.strategies.base import Strategy
from search.strategies.grid import GridStrategy
from search.strategies.random import RandomStrategy
from worker.engine.config import (
    DatasetConfig,
    ModelConfig,
    TrainConfig,
    TrainingConfig,
    field_exists,
)

# What a trial reports at its end, and so what an objective may name.
OBJECTIVE_METRICS = (
    "val_accuracy",
    "val_loss",
    "train_loss",
    "test_accuracy",
    "test_loss",
    "train_seconds",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RandomConfig(_Section):
    type: Literal["random"]
    seed: int = 0


class GridConfig(_Section):
    type: Literal["grid"]
    n: int = Field(5, ge=1, le=1000, description="Points per numeric parameter without values.")


StrategyConfig = Annotated[RandomConfig | GridConfig, Field(discriminator="type")]


class Objective(_Section):
    metric: str
    direction: Literal["minimize", "maximize"]

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in OBJECTIVE_METRICS:
            raise ValueError(f"unknown metric '{metric}'; one of {', '.join(OBJECTIVE_METRICS)}")
        return metric

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` beats value `b`."""
        return a < b if self.direction == "minimize" else a > b


class Budget(_Section):
    trials: int = Field(ge=1)
    parallelism: int = Field(1, ge=1)
    timeout_s: float | None = Field(None, gt=0)


class Pruner(_Section):
    type: Literal["none"] = "none"


class StudyDefinition(_Section):
    """A whole study file."""

    name: str = Field(min_length=1, max_length=200)
    dataset: DatasetConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    space: dict[str, Param] = {}
    strategy: StrategyConfig = RandomConfig(type="random")
    objective: Objective = Objective(metric="val_loss", direction="minimize")
    budget: Budget
    pruner: Pruner = Pruner()

    @field_validator("space")
    @classmethod
    def _paths_exist(cls, space: dict[str, Any]) -> dict[str, Any]:
        for path in space:
            if not field_exists(path):
                raise ValueError(f"'{path}' is not a setting of the dataset, model or training")
        Space(space)  # raises on a `when` that names no parameter, or a cycle
        return space

    @model_validator(mode="after")
    def _grid_has_values(self) -> StudyDefinition:
        if isinstance(self.strategy, GridConfig) and not self.space:
            raise ValueError("space: a grid search needs at least one parameter")
        return self

    def base_config(self) -> dict[str, Any]:
        """The dataset, model and training sections as plain data."""
        return self.model_dump(mode="json", include={"dataset", "model", "training"})

    def trial_config(self, params: dict[str, Any]) -> TrainConfig:
        """The base config with `params` written over their dotted paths, validated."""
        config = copy.deepcopy(self.base_config())
        for path, value in params.items():
            *parents, leaf = path.split(".")
            node = config
            for part in parents:
                node = node[part]
            node[leaf] = value
        return TrainConfig.parse(config)

    def search_space(self) -> Space:
        """The space of this study, its parameters ordered by their conditions."""
        return Space(self.space)

    def make_strategy(self) -> Strategy:
        """A fresh strategy for this study (strategies learn only from the history)."""
        if isinstance(self.strategy, GridConfig):
            return GridStrategy(n=self.strategy.n)
        return RandomStrategy(seed=self.strategy.seed)
