"""`hpsearch.optimize`: a study run in the caller's own process, with the caller's own training
code as its trainer, for notebooks and scripts. Results land in SQL as `hpsearch run`'s do.

The trainer is a `Trainer` (instance or class) or a plain function `objective(config, context)`;
either way it trains through the runner every worker uses (`run_trial`): `context.report`
records the curve and answers whether to stop (pruned, cancelled, out of time), and every
outcome, an exception included, becomes the trial's state, never an exception out of
`optimize`. A function defined in a notebook cannot be sent to other processes, so trials run
here: on this thread when the study's parallelism is 1, else on that many threads.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from rich.console import Console
from sqlalchemy.orm import Session

from hpsearch.api.fields import describe_error
from hpsearch.cli.local import StudyBar
from hpsearch.db import queries
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Study, StudyStatus, Trial
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.search.coordinator import Dispatch
from hpsearch.search.definition import StudyDefinition
from hpsearch.search.trainer_schema import SettingError
from hpsearch.trainer import Context, Trainer
from hpsearch.worker import trainers
from hpsearch.worker.dispatch import InProcess

Objective = Callable[[Any, Context], Mapping[str, float] | float]


class StudyError(ValueError):
    """A study `optimize` cannot run; `field` is the dotted field of the study at fault."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class BestTrial:
    """The best complete trial by the study's first objective."""

    number: int
    params: dict[str, Any]
    """The searched settings (space key -> value)."""
    config: dict[str, Any]
    """The full config it trained with: the study's `config` with `params` written in."""
    values: dict[str, float]


@dataclass(frozen=True)
class OptimizeResult:
    """What `optimize` leaves: the study (in the database given), its best trial, its trials."""

    study_id: int
    status: str
    """`complete`, or `timed_out` when `budget.timeout_s` ran out first."""
    best: BestTrial | None
    trials: list[dict[str, Any]]
    """One record per trial, by number: number, state, reason, params, values."""


def optimize(
    study: str | Path | Mapping[str, Any] | int,
    objective: Objective | Trainer | type[Trainer],
    *,
    db: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    config_model: type[BaseModel] | None = None,
    progress: bool = False,
) -> OptimizeResult:
    """Run a study to its end in this process with `objective` as its trainer.

    `study`: a study file's path, the same document as a dict, or the id of a stopped study in
    `db` to continue (after Ctrl-C, a timeout or a cancel). Its `trainer` is the objective's
    name (a Trainer's `name`, or the function's name) unless it names one itself.

    `objective`: a `Trainer`, or a function `objective(config, context)` returning its final
    metrics (a dict, or one number: the first objective's value). The function's `config` is
    the study's `config` dict with the trial's values written over the space's dotted paths,
    or an instance of `config_model` when one is given (and the study is checked against it).
    Its metrics are `metrics`, or else the study's objectives; `context.report(step, metrics)`
    records a step and answers True when the trial should stop (pruned).

    `db`: a database URL or an SQLite file's path; default `HPSEARCH_DATABASE_URL`
    (`hpsearch.db` here). Raises `StudyError`, naming the field, for a study it cannot run.
    Ctrl-C stops the run and re-raises KeyboardInterrupt, the study left to continue with
    `optimize(ID, objective, db=...)`: its finished trials kept, the interrupted ones run again.

        >>> def objective(config, context):
        ...     for step in range(1, 21):
        ...         loss = (config["x"] - 0.3) ** 2 + 1 / step
        ...         if context.report(step, {"loss": loss}):
        ...             break
        ...     return {"loss": loss}
        >>> result = optimize({"name": "x", "config": {"x": 0.0},
        ...     "space": {"x": {"type": "float", "low": -1, "high": 1}},
        ...     "objective": {"metric": "loss", "direction": "minimize"},
        ...     "budget": {"trials": 20}}, objective)  # doctest: +SKIP
    """
    url = _url(db)
    upgrade(url)
    if isinstance(study, int):
        definition = _stored(study, url)
    else:
        definition = _definition(_document(study), objective)
    trainer = _trainer(objective, definition, metrics, config_model)
    with _registered(trainer):
        if isinstance(study, int):
            study_id = study

            def start(dispatch: Dispatch) -> object:
                return dispatch(_resume(study_id, url))
        else:
            study_id = _create(definition, url)

            def start(dispatch: Dispatch) -> object:
                return coordinator.refill(study_id, dispatch=dispatch, url=url)

        _run(study_id, definition, url, start, progress, db)
    return _result(study_id, definition, url)


def _url(db: str | Path | None) -> str:
    if db is None:
        return get_settings().database_url
    return str(db) if "://" in str(db) else f"sqlite:///{db}"


def _document(study: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(study, Mapping):
        return dict(study)
    try:
        document = yaml.safe_load(Path(study).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise StudyError(None, f"cannot read {study}: {exc}") from None
    if not isinstance(document, dict):
        raise StudyError(None, f"{study}: a study file is one mapping (name, space, ...)")
    return document


def _definition(document: dict[str, Any], objective: object) -> StudyDefinition:
    """The study as validated, its trainer the objective's name unless it names one."""
    document.setdefault("trainer", _name_of(objective))
    try:
        return StudyDefinition.model_validate(document)
    except ValidationError as exc:
        field, message = describe_error(exc.errors()[0], document)
        raise StudyError(field, message) from None


def _name_of(objective: object) -> str:
    """A trainer's name, or one made of a function's name as a study's `trainer` takes it."""
    name = getattr(objective, "name", None)
    if isinstance(name, str) and (isinstance(objective, Trainer) or _is_trainer_class(objective)):
        return name
    made = re.sub(r"[^a-z0-9_]+", "-", getattr(objective, "__name__", "").lower())
    return re.sub(r"^[^a-z]+", "", made)[:40].rstrip("-") or "objective"


def _is_trainer_class(objective: object) -> bool:
    return isinstance(objective, type) and issubclass(objective, Trainer)


def _stored(study_id: int, url: str) -> StudyDefinition:
    with session_scope(url) as session:
        study = session.get(Study, study_id)
        if study is None:
            raise StudyError("study", f"study: no study {study_id} in {url}")
        return StudyDefinition.model_validate(study.definition)


def _trainer(
    objective: Objective | Trainer | type[Trainer],
    definition: StudyDefinition,
    metrics: Sequence[str] | None,
    config_model: type[BaseModel] | None,
) -> Trainer:
    """The objective as the study's trainer, the study checked against it."""
    if isinstance(objective, Trainer) or _is_trainer_class(objective):
        trainer = objective() if isinstance(objective, type) else objective
        if trainer.name != definition.trainer:
            raise StudyError(
                "trainer",
                f"trainer: the study names '{definition.trainer}', the objective is trainer"
                f" '{trainer.name}'",
            )
    elif callable(objective):
        trainer = _function_trainer(objective, definition, metrics, config_model)
    else:
        raise TypeError(f"objective: {objective!r} is neither a function nor a Trainer")
    try:
        definition.check_trainer(trainers.describe(trainer))
    except SettingError as exc:
        raise StudyError(exc.field, str(exc)) from None
    return trainer


class _AnyConfig(BaseModel):
    """A function's config when it declares no model: the study's `config`, as it is."""

    model_config = ConfigDict(extra="allow")


def _function_trainer(
    function: Objective,
    definition: StudyDefinition,
    metrics: Sequence[str] | None,
    config_model: type[BaseModel] | None,
) -> Trainer:
    objectives = [o.metric for o in definition.objectives]
    declared = tuple(metrics or objectives)

    class FunctionTrainer(Trainer):
        name = definition.trainer
        version = "function"
        Config = config_model or _AnyConfig
        step_metrics = declared
        final_metrics = declared

        def train(self, config: BaseModel, context: Context) -> Mapping[str, float]:
            given = config if config_model else config.model_dump()
            returned = function(given, context)
            if isinstance(returned, int | float):
                returned = {objectives[0]: returned}
            missing = [metric for metric in objectives if metric not in returned]
            if missing:
                raise ValueError(
                    f"the objective returned no '{missing[0]}' (it returned:"
                    f" {', '.join(returned) or 'nothing'})"
                )
            return returned

    FunctionTrainer.__qualname__ = f"FunctionTrainer({getattr(function, '__qualname__', '?')})"
    return FunctionTrainer()


def _registered(trainer: Trainer) -> AbstractContextManager[None]:
    try:
        return trainers.running_here(trainer)
    except ValueError as exc:
        raise StudyError("trainer", f"trainer: {exc}") from None


def _create(definition: StudyDefinition, url: str) -> int:
    with session_scope(url) as session:
        team_id = queries.ensure_team(session)
        return coordinator.create_study(session, team_id=team_id, definition=definition).id


def _resume(study_id: int, url: str) -> list[int]:
    """Run a stopped study on: the trials it queues (and those an interruption left)."""
    with session_scope(url) as session:
        if queries.study_status(session, study_id) == StudyStatus.RUNNING:
            return _take_over(session, study_id)
        try:
            return coordinator.resume_study(session, study_id)
        except ValueError as exc:
            raise StudyError("study", f"study {study_id}: {exc}") from None


def _take_over(session: Session, study_id: int) -> list[int]:
    """A study still `running` whose process was killed (no Ctrl-C): its running trials end
    lost, to be retried as a dead worker's are, and its queued ones run. Refused while a
    process that may still run it lives: nothing runs twice."""
    workers = queries.running_workers(session, study_id)
    alive = [worker for worker in workers if not _dead_here(worker)]
    if alive:
        raise StudyError("study", f"study {study_id}: still running, in process {', '.join(alive)}")
    queries.mark_lost(session, workers=workers)
    coordinator.queue_next(session, study_id)
    return queries.queued_trials(session, study_id)


def _dead_here(worker: str) -> bool:
    """Whether `worker` (`host:pid`) was a process of this machine that is gone."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process, alive
        return False
    return False


def _run(
    study_id: int,
    definition: StudyDefinition,
    url: str,
    start: Callable[[Dispatch], object],
    progress: bool,
    db: str | Path | None,
) -> None:
    trials = InProcess(definition.budget.parallelism, url=url)
    bar = StudyBar(study_id, definition, url, Console(stderr=True)) if progress else None
    try:
        with bar or nullcontext():
            start(trials.dispatch)
            trials.run(bar.update if bar is not None else lambda: None)
            if bar is not None:
                bar.update()
    except KeyboardInterrupt as exc:
        trials.stop()
        with session_scope(url) as session:
            coordinator.interrupt_study(session, study_id)
        # Their study ended, trials on threads stop at their next report; ending them then
        # changes nothing of their trials, queued again by now.
        trials.join()
        with session_scope(url) as session:
            finished = queries.study_progress(session, study_id).finished
        again = f", db={str(db)!r}" if db is not None else ""
        exc.add_note(
            f"hpsearch: study {study_id} stopped with {finished} finished trials kept; continue"
            f" it with hpsearch.optimize({study_id}, objective{again})"
        )
        raise


def _result(study_id: int, definition: StudyDefinition, url: str) -> OptimizeResult:
    with session_scope(url) as session:
        status = queries.study_status(session, study_id)
        best = queries.best_trial(session, study_id, definition.objectives[0].direction)
        return OptimizeResult(
            study_id=study_id,
            status=status.value if status else "deleted",
            best=_best(best, definition) if best is not None else None,
            trials=[_record(trial) for trial in queries.trials_of(session, study_id)],
        )


def _best(trial: Trial, definition: StudyDefinition) -> BestTrial:
    return BestTrial(
        number=trial.number,
        params=dict(trial.params),
        config=definition.trial_document(trial.params),
        values=dict(trial.values or {}),
    )


def _record(trial: Trial) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.value,
        "reason": trial.reason,
        "params": dict(trial.params),
        "values": dict(trial.values or {}),
    }
