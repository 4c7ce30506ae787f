"""The training configuration: what one trial trains, as the study file's base config says.

`dataset`, `model` and `training` are the three sections of a study file's base config. A
search space's dotted keys (``training.learning_rate``) are paths into this model, so every
field here is a setting a study can fix or search.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """A training configuration the engine cannot run; ``field`` is its dotted path."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Section):
    validation: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.2, ge=0, lt=1)
    seed: int = 0


class PreprocessConfig(_Section):
    scale: Literal["standard", "minmax", "none"] = "standard"
    impute: Literal["drop", "mean", "median"] = "mean"


class DatasetConfig(_Section):
    name: str = Field(min_length=1)
    target: str | None = None
    split: SplitConfig = SplitConfig()
    preprocess: PreprocessConfig = PreprocessConfig()


class ModelConfig(_Section):
    type: Literal["softmax", "mlp"] = "mlp"
    hidden: list[int] = [64]
    activation: Literal["sigmoid", "tanh", "relu", "leaky_relu"] = "relu"
    batch_norm: bool = False
    init: Literal["zeros", "uniform", "normal", "xavier", "he"] = "he"

    @field_validator("hidden")
    @classmethod
    def _positive_sizes(cls, hidden: list[int]) -> list[int]:
        if any(size < 1 for size in hidden):
            raise ValueError("every hidden size must be at least 1")
        return hidden

    @field_validator("batch_norm")
    @classmethod
    def _no_batch_norm_yet(cls, batch_norm: bool) -> bool:
        if batch_norm:
            raise ValueError("batch norm is not available in this engine version")
        return batch_norm


class StoppingConfig(_Section):
    patience: int | None = Field(None, ge=1)
    grad_tol: float | None = Field(None, ge=0)


class TrainingConfig(_Section):
    loss: Literal["cross_entropy"] = "cross_entropy"
    optimizer: Literal["gd", "sgd", "minibatch", "adam"] = "adam"
    learning_rate: float = Field(0.001, gt=0)
    batch_size: int | None = Field(64, ge=1)
    epochs: int = Field(30, ge=1)
    seed: int = 0
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    epsilon: float = Field(1e-8, gt=0)
    stopping: StoppingConfig = StoppingConfig()


class TrainConfig(_Section):
    """Everything one trial needs: the data set, the model and how to train it."""

    dataset: DatasetConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()

    @classmethod
    def parse(cls, document: dict[str, Any]) -> TrainConfig:
        """Validate a plain dict, raising `ConfigError` that names the first bad field."""
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "config"
            raise ConfigError(field, first["msg"]) from None


def field_exists(path: str) -> bool:
    """Whether a dotted path (``training.learning_rate``) names a field of `TrainConfig`."""
    model: type[BaseModel] | None = TrainConfig
    for part in path.split("."):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return True
