"""The training configuration: what one trial trains, as the study file's base config says.

`dataset`, `model` and `training` are the three sections of a study file's base config. A
search space's dotted keys (``training.learning_rate``) are paths into this model, so every
field here is a setting a study can fix or search.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A training configuration the engine cannot run; ``field`` is its dotted path."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class _Section(BaseModel):
    # NaN or infinity is no setting: it would only make a trial fail later, or never end.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# What NumPy's and Optuna's generators take as a seed.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
# Counts (epochs, units, steps) fit NumPy's default integers on every platform.
MAX_COUNT = 2**31 - 1


class SplitConfig(_Section):
    validation: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.2, ge=0, lt=1)
    seed: Seed = 0
    stratify: bool = Field(True, description="Keep class proportions in every split.")

    @model_validator(mode="after")
    def _room_for_training(self) -> SplitConfig:
        if self.validation + self.test >= 1:
            raise ValueError("validation + test must leave rows for training (sum < 1)")
        return self


class PreprocessConfig(_Section):
    scale: Literal["standard", "minmax", "none"] = "standard"
    impute: Literal["drop", "mean", "median"] = "mean"
    clip: float | None = Field(None, gt=0, description="Clip features at ± this many std.")
    one_hot: bool = Field(True, description="Expand categorical columns to indicator columns.")


class DatasetConfig(_Section):
    name: str | None = Field(
        None,
        min_length=1,
        description="A built-in data set (or, the legacy way, an upload's id as a string).",
    )
    upload: str | None = Field(
        None,
        min_length=1,
        max_length=120,
        description="An uploaded dataset of the team: `name` (its latest version) or"
        " `name@version`. Takes precedence over `name`.",
    )
    upload_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="An uploaded dataset by id, instead of `upload`."
    )
    target: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    n_samples: int | None = Field(None, ge=10, le=1_000_000, description="Synthetic sets only.")
    noise: float | None = Field(None, ge=0, description="Synthetic sets only.")
    split: SplitConfig = SplitConfig()
    preprocess: PreprocessConfig = PreprocessConfig()

    @model_validator(mode="after")
    def _names_one_dataset(self) -> DatasetConfig:
        if self.upload is not None and self.upload_id is not None:
            raise ValueError("give `upload` or `upload_id`, not both")
        if self.name is None and self.upload_ref() is None:
            raise ValueError("name a data set: `name` (built-in), `upload` or `upload_id`")
        return self

    def upload_ref(self) -> str | None:
        """The uploaded dataset this config trains on, as `Context.dataset` takes it: a name
        (`churn`, `churn@2`) or an id as digits; None for a built-in set. A space may set
        `upload` over a base config's built-in `name`, so an upload comes first."""
        if self.upload is not None:
            return self.upload
        if self.upload_id is not None:
            return str(self.upload_id)
        legacy_id = self.name is not None and self.name.isascii() and self.name.isdigit()
        return self.name if legacy_id else None


class ModelConfig(_Section):
    type: Literal["linear", "logistic", "softmax", "mlp"] = "mlp"
    hidden: list[Annotated[int, Field(ge=1, le=MAX_COUNT)]] = Field(
        [64], description="Units per hidden layer."
    )
    activation: Literal["sigmoid", "tanh", "relu", "leaky_relu"] = "relu"
    leaky_slope: float = Field(0.01, gt=0, lt=1)
    batch_norm: bool = False
    batch_norm_momentum: float = Field(0.9, ge=0, lt=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    init: Literal["zeros", "uniform", "normal", "xavier", "he", "orthogonal", "lsuv"] = "he"
    init_scale: float | None = Field(
        None, gt=0, description="r of uniform(-r, r), σ of normal(σ); default per initializer."
    )


class StoppingConfig(_Section):
    patience: int | None = Field(None, ge=1, le=MAX_COUNT)
    monitor: Literal["val_loss", "val_accuracy", "val_rmse", "train_loss"] = "val_loss"
    min_delta: float = Field(0.0, ge=0)
    grad_tol: float | None = Field(None, ge=0)
    max_iterations: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="Optimizer steps in all."
    )


class ConstantSchedule(_Section):
    type: Literal["constant"] = "constant"


class StepSchedule(_Section):
    type: Literal["step"]
    every: int = Field(10, ge=1, le=MAX_COUNT, description="Epochs between drops.")
    factor: float = Field(0.5, gt=0, le=1)


class ExponentialSchedule(_Section):
    type: Literal["exponential"]
    rate: float = Field(0.95, gt=0, le=1, description="Factor per epoch.")


class CosineSchedule(_Section):
    type: Literal["cosine"]
    min_lr: float = Field(0.0, ge=0)


Schedule = Annotated[
    ConstantSchedule | StepSchedule | ExponentialSchedule | CosineSchedule,
    Field(discriminator="type"),
]

Optimizer = Literal[
    "gd", "sgd", "minibatch", "momentum", "nag", "adagrad", "adadelta", "rmsprop", "adam", "adamw"
]


class TrainingConfig(_Section):
    loss: Literal["mse", "rss", "bce", "cross_entropy"] | None = Field(
        None, description="None: the model's own (mse, bce or cross_entropy)."
    )
    optimizer: Optimizer = "adam"
    learning_rate: float | None = Field(
        0.001, gt=0, description="η; adadelta needs none (it scales Δ, default 1)."
    )
    batch_size: int | None = Field(64, ge=1, le=MAX_COUNT)
    epochs: int = Field(30, ge=1, le=MAX_COUNT)
    seed: Seed = 0
    momentum: float = Field(0.9, ge=0, lt=1, description="β of momentum and nag.")
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    gamma: float = Field(0.9, ge=0, lt=1, description="γ of rmsprop and adadelta.")
    epsilon: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0, description="L2 added to g; decoupled for adamw.")
    schedule: Schedule = ConstantSchedule()
    dtype: Literal["float32", "float64"] = "float32"
    stopping: StoppingConfig = StoppingConfig()


class TrainConfig(_Section):
    """Everything one trial needs: the data set, the model and how to train it."""

    dataset: DatasetConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()

    @classmethod
    def parse(cls, document: dict[str, Any]) -> TrainConfig:
        """Validate a plain dict, raising `ConfigError` that names the first bad field."""
        return parse_config(cls, document)


def parse_config(model: type[M], document: dict[str, Any]) -> M:
    """`document` validated as `model`, or `ConfigError` naming its first bad field."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "config"
        raise ConfigError(field, first["msg"]) from None


def field_exists(path: str) -> bool:
    """Whether a dotted path (``training.learning_rate``) names a field of `TrainConfig`.

    Through a union of sections (``training.schedule``) a path exists if any member has it.
    """
    return bool(_fields_at(path))


def check_setting(path: str, value: Any) -> None:
    """Raise `ConfigError` unless `value` is a valid setting at `path`, judged on its own.

    Checks across settings (a split leaving rows for training) need the whole config and are
    left to `TrainConfig.parse`; this catches what no trial could run, e.g. an unknown optimizer.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(path, "must be a finite number")
    errors: list[str] = []
    for adapter in _adapters(path):
        try:
            adapter.validate_python(value)
            return
        except ValidationError as exc:
            errors.append(exc.errors()[0]["msg"])
    reason = errors[0] if errors else "not a setting of the dataset, model or training"
    raise ConfigError(path, reason)


@cache
def _adapters(path: str) -> tuple[TypeAdapter, ...]:
    return tuple(TypeAdapter(Annotated[f.annotation, f]) for f in _fields_at(path))


def _fields_at(path: str) -> list[FieldInfo]:
    """The fields a dotted path reaches: one, or one per union member that has it."""
    models: list[type[BaseModel]] = [TrainConfig]
    fields: list[FieldInfo] = []
    for part in path.split("."):
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if not fields:
            return []
        models = [sub for f in fields for sub in _sections(f.annotation)]
    return fields


def _sections(annotation: Any) -> list[type[BaseModel]]:
    """The section models an annotation holds: itself, or the members of a union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [a for arg in get_args(annotation) for a in _sections(arg)]
