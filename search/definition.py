"""The study file: one YAML or JSON document, validated with errors that name the field.

`dataset`, `model` and `training` form the base config (the engine's `TrainConfig`); the keys
of `space` are dotted paths into it. A trial's configuration is the base with its sampled
values written over those paths.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hpsearch.db.names import IDENTIFIER, LongName, Tag
from hpsearch.search.pruners import HyperbandPruner, MedianPruner, NoPruner, Pruner
from hpsearch.search.space import CategoricalParam, FloatParam, IntParam, Param, ParamSpec, Space
from hpsearch.search.strategies.base import Strategy
from hpsearch.search.strategies.coarse_to_fine import CoarseToFineStrategy, round_sizes
from hpsearch.search.strategies.grid import GridStrategy
from hpsearch.search.strategies.pbt import PBTStrategy
from hpsearch.search.strategies.random import RandomStrategy
from hpsearch.search.trainer_schema import SettingError, TrainerInfo
from hpsearch.worker.engine.config import (
    MAX_COUNT,
    ConfigError,
    DatasetConfig,
    ModelConfig,
    Seed,
    TrainConfig,
    TrainingConfig,
    check_setting,
    field_exists,
)

# What a trial reports at its end, and so what an objective may name.
OBJECTIVE_METRICS = (
    "val_accuracy",
    "val_rmse",
    "val_loss",
    "train_loss",
    "test_accuracy",
    "test_rmse",
    "test_loss",
    "train_seconds",
)


# A study file nests no deeper than this: choices and enqueued values are settings, not trees,
# and a deeper document is only a way to make the server recurse.
MAX_DEPTH = 32
# The longest a study may be given to run (a year); longer is no deadline a clock can hold.
MAX_TIMEOUT_S = 366 * 24 * 3600


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RandomConfig(_Section):
    type: Literal["random"]
    seed: Seed = 0


class GridConfig(_Section):
    type: Literal["grid"]
    n: int = Field(5, ge=1, le=1000, description="Points per numeric parameter without values.")


class CoarseToFineConfig(_Section):
    type: Literal["coarse_to_fine"]
    seed: Seed = 0
    rounds: int = Field(4, ge=1, le=100)
    samples_per_round: int | None = Field(
        None, ge=2, le=10_000, description="Trials per round; unset: the budget over the rounds."
    )
    keep: float = Field(0.25, gt=0, le=1, description="Fraction of a round's best trials kept.")
    margin: float = Field(0.1, ge=0, le=1, description="Kept range widened by this fraction.")
    epochs_per_round: list[Annotated[float, Field(gt=0, le=1)]] | None = Field(
        None,
        description="Fraction of training.epochs each round trains, one per round; unset:"
        " 1/8, 1/4, 1/2, 1 (each round twice the one before, the last in full).",
    )
    min_width: float = Field(
        0.1, gt=0, le=1, description="Narrowest a box gets, as a fraction of the whole range."
    )
    arm_min_trials: int = Field(
        4, ge=1, le=10_000, description="Finished trials an arm needs before it can be dropped."
    )
    drop_margin: float = Field(
        1.0,
        ge=0,
        description="An arm is dropped when its best is this far behind the round's"
        " best, in units of the round's best-to-median distance.",
    )
    round_ratio: float = Field(
        1.5,
        ge=1,
        le=16,
        description="Unless samples_per_round is given, the budget is split so that each round"
        " has this many times the trials of the next (2: as many epochs in each round, as in"
        " successive halving; 1 splits it equally).",
    )
    promote: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Share of the second round's trials that are the round before's best,"
        " trained again with the round's epochs; later rounds' shares grow evenly to"
        " promote_last.",
    )
    promote_last: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Share of the last round's trials that are the round before's best.",
    )

    @field_validator("epochs_per_round")
    @classmethod
    def _one_fraction_per_round(
        cls, fractions: list[float] | None, info: ValidationInfo
    ) -> list[float] | None:
        rounds = info.data.get("rounds")
        if fractions is not None and rounds is not None and len(fractions) != rounds:
            raise ValueError(f"{len(fractions)} fractions for {rounds} rounds: one per round")
        return fractions


class OptunaConfig(_Section):
    type: Literal["tpe", "gp", "cmaes", "nsga2", "qmc"]
    seed: Seed = 0
    n_startup_trials: int = Field(
        10, ge=1, le=10_000, description="Start-up trials (a Latin hypercube) before tpe/gp model."
    )
    population_size: int = Field(20, ge=2, le=10_000, description="nsga2 generation size.")

    @field_validator("type")
    @classmethod
    def _installed(cls, kind: str) -> str:
        if kind == "gp" and importlib.util.find_spec("torch") is None:
            raise ValueError("the gp sampler needs PyTorch: pip install 'hpsearch[gp]'")
        return kind


class PBTConfig(_Section):
    type: Literal["pbt"]
    seed: Seed = 0
    population: int = Field(8, ge=2, le=256, description="Members trained side by side.")
    interval: int = Field(
        ge=1, le=MAX_COUNT, description="Epochs between two exploits: one trial per member."
    )
    quantile: float = Field(
        0.25, gt=0, le=0.5, description="Bottom fraction that copies the top fraction."
    )
    resample_probability: float = Field(
        0.25, ge=0, le=1, description="Chance that a copied setting is drawn again."
    )
    steps_setting: str | None = Field(
        None,
        max_length=200,
        description="A plugin's config setting counting the steps it trains (the built-in"
        " engine's is training.epochs).",
    )


StrategyConfig = Annotated[
    RandomConfig | GridConfig | CoarseToFineConfig | OptunaConfig | PBTConfig,
    Field(discriminator="type"),
]

# Strategies that rank trials by one value, and so cannot serve a Pareto front.
SINGLE_OBJECTIVE_STRATEGIES = ("coarse_to_fine", "cmaes", "pbt")


class Objective(_Section):
    # The length apart from the pattern: pydantic's regex engine (Rust's) compiles a Unicode
    # class repeated {0,99} times into an automaton 99 classes long, about 50 ms at import.
    metric: str = Field(pattern=r"^[A-Za-z_][\w.-]*$", max_length=100)
    direction: Literal["minimize", "maximize"]


class Budget(_Section):
    trials: int = Field(ge=1)
    parallelism: int = Field(1, ge=1)
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S)
    max_retries: int = Field(
        2, ge=0, le=10, description="Runs again of a trial whose worker died (`failed: lost`)."
    )


class CheckpointsConfig(_Section):
    """When a running trial saves its training state, which a retry of it resumes from."""

    every_seconds: float | None = Field(
        30.0, gt=0, description="Save when this long has passed since the last save."
    )
    every_epochs: int | None = Field(
        None, ge=1, description="Save after every this many epochs (steps) too."
    )
    keep_weights: bool = Field(
        True, description="Keep each complete trial's trained weights, for download."
    )


class NoPrunerConfig(_Section):
    type: Literal["none"] = "none"


class MedianPrunerConfig(_Section):
    type: Literal["median"]
    warmup_epochs: int = Field(5, ge=0, description="Epochs a trial runs before it can be pruned.")
    min_trials: int = Field(5, ge=1, description="Finished trials needed before pruning starts.")


class HyperbandConfig(_Section):
    type: Literal["hyperband"]
    min_epochs: int = Field(1, ge=1, description="Resource of the first rung.")
    reduction_factor: int = Field(3, ge=2, description="1/η of a rung goes on to the next.")
    max_steps: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="Resource of the last rung; unset: the built-in engine's most epochs."
        " Required with a trainer plugin.",
    )


PrunerConfig = Annotated[
    NoPrunerConfig | MedianPrunerConfig | HyperbandConfig, Field(discriminator="type")
]

# Metrics a trial reports every epoch, so a pruner can compare curves on them.
EPOCH_METRICS = ("val_accuracy", "val_rmse", "val_loss", "train_loss")


# team/name@version: any team name without / or @, a preset name as presets are named.
PRESET_REF = rf"^[^/@]{{1,100}}/{IDENTIFIER}{{0,99}}@(latest|[1-9][0-9]{{0,8}})$"


class WarmStart(_Section):
    preset: str = Field(
        pattern=PRESET_REF, description="A preset to run first: team/name@version or @latest."
    )


# The most finished trials a study file may bring in as `history`.
MAX_HISTORY = 10_000


class HistoryTrial(_Section):
    """A trial finished elsewhere (e.g. in an Optuna study), brought in as a warm start."""

    params: dict[str, Any] = Field(description="A point of the space (space key -> value).")
    values: list[float] = Field(
        min_length=1, description="Its objectives' values, in the order of `objective`."
    )


# The setting coarse_to_fine's coarse rounds train less of.
EPOCHS_KEY = "training.epochs"

# The built-in engine's trainer: a study that names none trains with it.
BUILTIN_TRAINER = "numpy"


class StudyDefinition(_Section):
    """A whole study file."""

    name: Annotated[LongName, StringConstraints(min_length=1)]
    trainer: str = Field(
        BUILTIN_TRAINER,
        pattern=r"^[a-z][a-z0-9_-]{0,39}$",
        description="What trains each trial: `numpy` (the built-in engine) or a trainer plugin.",
    )
    runs_on: Literal["any", "workers", "agents"] = Field(
        "any",
        description="Who runs its trials: `workers` (Celery workers, or `hpsearch serve`'s local"
        " pool), `agents` (`hpsearch agent` on users' machines), or `any` of them.",
    )
    config: dict[str, Any] | None = Field(
        None,
        description="A trainer plugin's base config; the built-in engine's is `dataset`,"
        " `model` and `training`.",
    )
    seed: Seed = Field(0, description="Handed to a trainer plugin as `context.seed`.")
    dataset: DatasetConfig | None = None
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    space: dict[str, Param] = {}
    strategy: StrategyConfig = RandomConfig(type="random")
    objective: list[Objective] = Field(
        [Objective(metric="val_loss", direction="minimize")],
        min_length=1,
        description="One objective, or a list of several for a Pareto front.",
    )
    budget: Budget
    checkpoints: CheckpointsConfig = Field(
        CheckpointsConfig(), description="Trials' saved states, for a lost trial to resume."
    )
    pruner: PrunerConfig = NoPrunerConfig()
    enqueue: list[dict[str, Any]] = Field(
        [], description="Configurations (space key -> value) run first; they count in the budget."
    )
    warm_start: WarmStart | None = Field(
        None, description="A shared preset whose settings run first, before `enqueue`."
    )
    tags: list[Tag] = Field([], max_length=20, description="Labels to find the study by.")
    history: list[HistoryTrial] = Field(
        [],
        max_length=MAX_HISTORY,
        description="Trials finished elsewhere, stored as this study's first, complete trials:"
        " the strategies learn from them; they are not run, and not counted in the budget.",
    )

    @field_validator("space")
    @classmethod
    def _paths_exist(cls, space: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # A plugin's settings are checked against its announced schema (`check_trainer`).
        if info.data.get("trainer") == BUILTIN_TRAINER:
            for path in space:
                if not field_exists(path):
                    raise ValueError(f"'{path}' is not a setting of the dataset, model or training")
        Space(space)  # raises on a `when` that names no parameter, or a cycle
        return space

    @model_validator(mode="after")
    def _sections_of_the_trainer(self) -> StudyDefinition:
        if self.trainer == BUILTIN_TRAINER:
            if self.config is not None:
                raise ValueError(
                    "config: the numpy trainer takes `dataset`, `model` and `training`"
                )
            if self.dataset is None:
                raise ValueError("dataset: required by the numpy trainer")
            for i, objective in enumerate(self.objectives):
                if objective.metric not in OBJECTIVE_METRICS:
                    known = ", ".join(OBJECTIVE_METRICS)
                    raise _error_at(
                        ("objective", i, "metric"),
                        f"unknown metric '{objective.metric}'; one of {known}",
                    )
        else:
            if isinstance(self.pruner, HyperbandConfig) and self.pruner.max_steps is None:
                raise ValueError(
                    f"pruner.max_steps: hyperband needs it with trainer {self.trainer}"
                )
            engine = {"dataset": None, "model": ModelConfig(), "training": TrainingConfig()}
            for section, unset in engine.items():
                if getattr(self, section) != unset:
                    raise ValueError(
                        f"{section}: trainer {self.trainer} takes its settings in `config`"
                    )
        return self

    @model_validator(mode="before")
    @classmethod
    def _shallow(cls, document: Any) -> Any:
        for key, value in document.items() if isinstance(document, dict) else ():
            if _depth(value) >= MAX_DEPTH:
                raise ValueError(f"{key}: nests deeper than {MAX_DEPTH} levels")
        return document

    @field_validator("objective", mode="before")
    @classmethod
    def _as_list(cls, objective: Any) -> Any:
        return [objective] if isinstance(objective, dict) else objective

    @field_validator("objective")
    @classmethod
    def _distinct_metrics(cls, objective: list[Objective]) -> list[Objective]:
        metrics = [o.metric for o in objective]
        if len(set(metrics)) != len(metrics):
            raise ValueError("each metric may appear once")
        return objective

    @model_validator(mode="after")
    def _settings_valid(self) -> StudyDefinition:
        # Every value a parameter can take must be a setting the engine runs: a choice it would
        # refuse is a study that can only fail, so it is refused here, naming the value.
        if self.trainer != BUILTIN_TRAINER:
            return self  # judged against the plugin's announced schema (`check_trainer`)
        for path, param in self.space.items():
            for field, value in _values_to_check(param):
                try:
                    check_setting(path, value)
                except ConfigError as exc:
                    raise ValueError(f"space.{path}.{field}: {exc.reason}") from None
            if isinstance(param, FloatParam) and param.values is None:
                between = math.nextafter(param.low, param.high)
                try:
                    check_setting(path, between)
                except ConfigError as exc:
                    raise ValueError(
                        f"space.{path}.type: a float parameter takes values such as {between}"
                        f" between low and high ({exc.reason}); use type int"
                    ) from None
        return self

    @model_validator(mode="after")
    def _consistent(self) -> StudyDefinition:
        if isinstance(self.strategy, GridConfig) and not self.space:
            raise ValueError("space: a grid search needs at least one parameter")
        self._fidelity_settable()
        multi = len(self.objectives) > 1
        if multi and self.strategy.type in SINGLE_OBJECTIVE_STRATEGIES:
            raise ValueError(f"strategy.type: {self.strategy.type} optimises one objective only")
        if self.pruner.type != "none":
            if multi:
                raise ValueError("pruner: pruning needs a single objective")
            builtin = self.trainer == BUILTIN_TRAINER
            if builtin and self.objectives[0].metric not in EPOCH_METRICS:
                raise ValueError(
                    f"pruner: needs an objective reported every epoch ({', '.join(EPOCH_METRICS)})"
                )
        if isinstance(self.strategy, PBTConfig):
            self._check_pbt(self.strategy)
        space = self.search_space()
        for i, config in enumerate(self.enqueue):
            if not space.contains(config):
                raise ValueError(f"enqueue.{i}: {config} is not a point of the space")
        for i, trial in enumerate(self.history):
            if (mismatch := space.mismatch(trial.params)) is not None:
                name, reason = mismatch
                raise ValueError(f"history.{i}.params.{name}: {reason}")
            if len(trial.values) != len(self.objectives):
                raise ValueError(
                    f"history.{i}.values: {len(trial.values)} values for"
                    f" {len(self.objectives)} objectives"
                )
        return self

    def _check_pbt(self, pbt: PBTConfig) -> None:
        """What population-based training needs of the study: the setting that counts a
        trial's steps (the engine's epochs, or a plugin's `strategy.steps_setting`), which it
        sets per generation itself, and a budget of exactly one trial per member and
        generation. That a plugin resumes its state is checked against its offer
        (`check_trainer`); the engine does."""
        key = self.pbt_steps_key()
        if key is None:
            raise ValueError(
                f"strategy.steps_setting: pbt needs the setting of trainer {self.trainer}'s"
                " config that counts the steps it trains (its epochs), e.g. `steps`"
            )
        if key in self.space:
            raise ValueError(f"space.{key}: pbt sets each generation's steps itself")
        steps = _dig(self.base_config(), key)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(
                f"{'training.epochs' if key == EPOCHS_KEY else 'config.' + key}: pbt needs a"
                f" whole number of steps >= 1 here, not {steps!r}"
            )
        for field in ("enqueue", "history", "warm_start"):
            if getattr(self, field):
                raise ValueError(f"{field}: pbt plans every trial of its population itself")
        if self.pruner.type != "none":
            raise ValueError("pruner: pbt replaces its worst members instead of pruning them")
        generations = math.ceil(steps / pbt.interval)
        needed = pbt.population * generations
        if self.budget.trials != needed:
            raise ValueError(
                f"budget.trials: pbt runs population x generations = {pbt.population} x"
                f" {generations} ({key} {steps} / interval {pbt.interval}) = {needed} trials,"
                f" not {self.budget.trials}"
            )

    def pbt_steps_key(self) -> str | None:
        """The setting pbt writes each generation's steps to: the engine's `training.epochs`,
        or the plugin's `strategy.steps_setting`."""
        if self.trainer == BUILTIN_TRAINER:
            return EPOCHS_KEY
        return self.strategy.steps_setting if isinstance(self.strategy, PBTConfig) else None

    def _fidelity_settable(self) -> None:
        """coarse_to_fine's epochs per round reduce `training.epochs`: a study whose epochs
        are searched, or whose trainer has no such setting, cannot be given them."""
        if not isinstance(self.strategy, CoarseToFineConfig) or self.fidelity_key() is not None:
            return
        if self.strategy.epochs_per_round is not None:
            why = (
                "training.epochs is searched"
                if self.trainer == BUILTIN_TRAINER
                else f"trainer {self.trainer} has no training.epochs"
            )
            raise ValueError(f"strategy.epochs_per_round: {why}; leave it unset")

    def fidelity_key(self) -> str | None:
        """The setting coarse_to_fine's coarse rounds reduce: the built-in engine's
        `training.epochs`, unless the space searches it (or another trainer trains)."""
        if self.trainer != BUILTIN_TRAINER or EPOCHS_KEY in self.space:
            return None
        return EPOCHS_KEY

    @property
    def objectives(self) -> list[Objective]:
        """The objectives, one or several (the first is the one trials are ranked by)."""
        return self.objective

    def base_config(self) -> dict[str, Any]:
        """The config every trial starts from, as plain data: a plugin's `config`, or the
        dataset, model and training sections of the built-in engine."""
        if self.trainer != BUILTIN_TRAINER:
            return self.model_dump(mode="json", include={"config"})["config"] or {}
        return self.model_dump(mode="json", include={"dataset", "model", "training"})

    def check_trainer(self, trainer: TrainerInfo) -> None:
        """Raise `SettingError` unless the trainer can run every trial: the base config and
        every value of the space valid in its schema, the objectives among what it returns,
        a pruner's metric among what it reports every step."""
        for objective in self.objectives:
            if objective.metric not in trainer.final_metrics:
                raise SettingError(
                    "objective",
                    f"trainer {trainer.name} returns no '{objective.metric}'"
                    f" (it returns {', '.join(trainer.final_metrics)})",
                )
        metric = self.objectives[0].metric
        if self.pruner.type != "none" and metric not in trainer.step_metrics:
            raise SettingError(
                "pruner",
                f"trainer {trainer.name} reports no '{metric}' every step"
                f" (it reports {', '.join(trainer.step_metrics)})",
            )
        if isinstance(self.strategy, PBTConfig) and not trainer.resumable:
            raise SettingError(
                "strategy.type",
                f"pbt needs trainer {trainer.name} to save and resume its state: it declares"
                " no `resumable = True` (its `train` must start from `context.resume` and call"
                " `context.checkpoint`)",
            )
        if errors := trainer.config_errors(self.base_config()):
            field, reason = errors[0]
            raise SettingError(".".join(filter(None, ["config", field])), reason)
        for path, param in self.space.items():
            if not trainer.setting_exists(path):
                raise SettingError("space", f"'{path}' is not a setting of trainer {trainer.name}")
            for field, value in _values_to_check(param):
                if (reason := trainer.setting_error(path, value)) is not None:
                    raise SettingError(f"space.{path}.{field}", reason)

    def settings_at(self, path: str) -> list[tuple[str, Any]]:
        """(field, value) of every value the setting at dotted `path` can take in some trial:
        the base config's, then each one the space can write there (its choices, grid values
        and bounds, read inside the choices of a parameter over a whole section)."""
        found = [(path, _dig(self.base_config(), path))]
        for key, param in self.space.items():
            if key == path:
                found += [(f"space.{key}.{f}", v) for f, v in _values_to_check(param)]
            elif path.startswith(key + "."):
                rest = path.removeprefix(key + ".")
                found += [
                    (f"space.{key}.{f}", _dig(v, rest))
                    for f, v in _values_to_check(param)
                    if _dig(v, rest) is not None
                ]
        return found

    def params_of(self, config: dict[str, Any]) -> dict[str, Any]:
        """The values a full trial config (e.g. a preset's) gives this study's parameters:
        the space's keys read at their dotted paths, inactive conditional ones left out."""
        space = self.search_space()
        params: dict[str, Any] = {}
        for path in space.params:
            if space.is_active(path, params):
                params[path] = _dig(config, path)
        return params

    def run_first(self, params: dict[str, Any]) -> StudyDefinition:
        """This study with `params` ahead of its enqueued configurations, validated again."""
        document = self.model_dump(mode="json")
        document["enqueue"] = [params, *document["enqueue"]]
        return StudyDefinition.model_validate(document)

    def trial_document(self, params: dict[str, Any]) -> dict[str, Any]:
        """The base config with `params` written over their dotted paths, as plain data."""
        config = self.base_config()  # a fresh dump, shared with nothing: no copy needed
        for path, value in params.items():
            *parents, leaf = path.split(".")
            node = config
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return config

    def trial_config(self, params: dict[str, Any]) -> TrainConfig:
        """The built-in engine's config of a trial with `params`, validated."""
        return TrainConfig.parse(self.trial_document(params))

    def make_pruner(self) -> Pruner:
        """The pruner this study asks at every epoch a trial reports."""
        direction = self.objectives[0].direction
        config = self.pruner
        if isinstance(config, MedianPrunerConfig):
            return MedianPruner(
                direction, warmup_epochs=config.warmup_epochs, min_trials=config.min_trials
            )
        if isinstance(config, HyperbandConfig):
            return HyperbandPruner(
                direction,
                min_epochs=config.min_epochs,
                max_epochs=self._max_epochs(),
                reduction_factor=config.reduction_factor,
            )
        return NoPruner(direction)

    def _max_epochs(self) -> int:
        if isinstance(self.pruner, HyperbandConfig) and self.pruner.max_steps is not None:
            return self.pruner.max_steps
        searched = self.space.get("training.epochs")
        if isinstance(searched, IntParam):
            return searched.high
        if isinstance(searched, CategoricalParam):
            return max(int(c) for c in searched.choices)
        return self.training.epochs

    def search_space(self) -> Space:
        """The space of this study, its parameters ordered by their conditions."""
        return Space(self.space)

    def make_strategy(self) -> Strategy:
        """A fresh strategy for this study."""
        config = self.strategy
        if isinstance(config, GridConfig):
            return GridStrategy(n=config.n)
        if isinstance(config, CoarseToFineConfig):
            return CoarseToFineStrategy(
                seed=config.seed,
                rounds=config.rounds,
                samples_per_round=config.samples_per_round
                or round_sizes(self.budget.trials, config.rounds, config.round_ratio),
                keep=config.keep,
                margin=config.margin,
                direction=self.objectives[0].direction,
                epochs_per_round=config.epochs_per_round,
                epochs_key=self.fidelity_key(),
                full_epochs=self.training.epochs,
                min_width=config.min_width,
                arm_min_trials=config.arm_min_trials,
                drop_margin=config.drop_margin,
                promote=config.promote,
                promote_last=config.promote_last,
            )
        if isinstance(config, OptunaConfig):
            # Optuna loads for the studies that use it: not in every process that reads a study
            # (about 0.3 s of `hpsearch run`'s start, for a random or grid study).
            from hpsearch.search.strategies.optuna_samplers import (
                SPACE_FILLING,
                OptunaStrategy,
                make_sampler,
            )

            sampler = make_sampler(
                config.type,
                seed=config.seed,
                n_startup_trials=config.n_startup_trials,
                population_size=config.population_size,
                conditional=any(p.when for p in self.space.values()),
            )
            return OptunaStrategy(
                sampler,
                [o.direction for o in self.objectives],
                seed=config.seed,
                space_filling=config.n_startup_trials if config.type in SPACE_FILLING else 0,
            )
        if isinstance(config, PBTConfig):
            key = self.pbt_steps_key() or EPOCHS_KEY
            return PBTStrategy(
                seed=config.seed,
                epochs_key=key,
                population=config.population,
                interval=config.interval,
                epochs=_dig(self.base_config(), key),
                quantile=config.quantile,
                resample_probability=config.resample_probability,
                direction=self.objectives[0].direction,
            )
        return RandomStrategy(seed=config.seed)


def _values_to_check(param: ParamSpec) -> list[tuple[str, Any]]:
    """(field, value) of every value a parameter names: its bounds, choices and grid values."""
    named: list[tuple[str, Any]] = []
    if isinstance(param, CategoricalParam):
        named += [(f"choices[{i}]", choice) for i, choice in enumerate(param.choices)]
    else:
        named += [("low", param.low), ("high", param.high)]
    named += [(f"values[{i}]", value) for i, value in enumerate(param.values or [])]
    return named


def _error_at(loc: tuple[str | int, ...], message: str) -> ValidationError:
    """A validation error at `loc`, for a check that needs fields validated before it."""
    error = PydanticCustomError("value_error", message)
    return ValidationError.from_exception_data("StudyDefinition", [{"type": error, "loc": loc}])


def _dig(document: Any, path: str) -> Any:
    """The value at a dotted path into nested dicts; None where the path leads nowhere."""
    for part in path.split("."):
        document = document.get(part) if isinstance(document, dict) else None
    return document


def _depth(document: Any) -> int:
    """How deeply lists and dicts nest in `document`, found without recursion."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        node, depth = pending.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    return depth + 1
                pending.append((child, depth + 1))
        deepest = max(deepest, depth)
    return deepest
