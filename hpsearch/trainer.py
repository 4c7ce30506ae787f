"""The trainer interface: how a team's own training code is tuned by hpsearch.

A trainer is a class registered under the entry-point group ``hpsearch.trainers`` of the package
that holds it, and installed on the machines that run its trials (the REST API never receives
code)::

    # pyproject.toml of the team's package
    [project.entry-points."hpsearch.trainers"]
    ridge = "hpsearch_ridge:RidgeTrainer"

It declares its name and version, its config as a pydantic model (a study's ``space`` keys are
dotted paths into it), the metrics it reports every step and those it returns at the end, and
``train(config, context)``. The built-in NumPy engine is the trainer ``numpy``, registered the
same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

from pydantic import BaseModel


@dataclass(frozen=True)
class Dataset:
    """One of the study's team's uploaded datasets, as its file was uploaded.

    ``content`` is the file's bytes (CSV text, or an NPZ archive to open with
    ``numpy.load(io.BytesIO(content), allow_pickle=False)``).
    """

    id: int
    format: Literal["csv", "npz"]
    content: bytes


class Context(Protocol):
    """What a trainer is handed besides its config."""

    #: The trial's seed: seed every random generator from it for repeatable trials.
    seed: int
    #: The state to continue from, or None to start afresh: what `save` gave at the last
    #: checkpoint of an earlier run of this trial that was lost. Reports go on after the step
    #: it was saved at; the steps before are on the trial already.
    resume: bytes | None

    def report(self, step: int, metrics: Mapping[str, float]) -> bool:
        """Record the metrics of one step (an epoch, say; steps count from 1). True means
        stop now: the trial was pruned, or its study was cancelled or ran out of time. A NaN
        or infinite metric ends the trial `failed: diverged` and also answers True."""
        ...

    def checkpoint(self, step: int, save: Callable[[], bytes]) -> None:
        """Offer the training state after `step` (call it after `report`). hpsearch calls
        `save` only when a checkpoint is due (the study's `checkpoints` setting) and keeps the
        latest, for a retry of the trial to resume from. Opt in by calling it and by reading
        `resume`; a trainer that never calls it restarts from its first step when retried."""
        ...

    def keep_weights(self, save: Callable[[], bytes]) -> None:
        """Offer the trained model at the end of training: if the trial completes (and the
        study keeps weights), hpsearch stores what `save` gives, for download."""
        ...

    def dataset(self, ref: str) -> Dataset:
        """The uploaded dataset `ref` of the study's team: its name (the version the study
        pinned when submitted, else the latest), `name@version`, or its id as digits; another
        team's dataset is as missing as one that never existed (`LookupError`)."""
        ...


class Diverged(Exception):  # noqa: N818 - the trial's outcome, named as the user reads it
    """Raised by a trainer whose training blew up: the trial ends `failed: diverged (reason)`,
    keeping `metrics` (the last good ones), not as an error."""

    def __init__(self, reason: str, metrics: Mapping[str, float] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.metrics = dict(metrics or {})


class Trainer(ABC):
    """A training procedure hpsearch can tune. Subclass it and register the class."""

    #: Unique among the trainers a worker has; a study names it in `trainer:`.
    name: ClassVar[str]
    #: Changes when the same config may train differently; recorded on presets.
    version: ClassVar[str]
    #: Every setting a study can fix (in `config:`) or search (in `space:`).
    Config: ClassVar[type[BaseModel]]
    #: Metrics `report` carries every step: what pruners compare curves on.
    step_metrics: ClassVar[tuple[str, ...]]
    #: Metrics `train` returns: what a study's objective may name.
    final_metrics: ClassVar[tuple[str, ...]]
    #: What one reported step is, in the trial's reasons ("pruned at epoch 3").
    step_name: ClassVar[str] = "step"
    #: True when `train` starts from `context.resume` and offers its state through
    #: `context.checkpoint`: population-based training (`pbt`) runs only such trainers.
    resumable: ClassVar[bool] = False

    @abstractmethod
    def train(self, config: BaseModel, context: Context) -> Mapping[str, float]:
        """Train one configuration (an instance of `Config`) and return its final metrics.

        Stop soon after `context.report` answers True, returning the metrics reached. Any
        exception ends the trial `failed: error` with its message and traceback's last lines.
        """
