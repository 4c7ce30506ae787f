"""Studies both ways between hpsearch's REST JSON and Optuna's storage: pure conversions, plus
the two calls that read or write an Optuna storage.

Out: each finished trial becomes an Optuna trial with its distributions (from the study's
space), params, state, values and per-step intermediate values (the first objective's metric),
and user attributes for where it came from; queued and running trials are left out. In: an
Optuna study's complete trials become a study file's `history`, which the server stores as the
new study's first trials, complete and marked imported, for its sampler to learn from.

A categorical parameter is held by Optuna as the JSON text of each choice (as the Optuna-backed
strategies hold it, so that choices may be lists or sections); on the way in, a raw choice
(`"adam"`) and its JSON text (`'"adam"'`) are both understood.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from hpsearch.search.definition import StudyDefinition
from hpsearch.search.space import CategoricalParam, Space
from hpsearch.search.strategies.optuna_samplers import distribution, encode

_STATES = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}


class BridgeError(ValueError):
    """A study that cannot cross as asked; the message names the option or field at fault."""


@contextmanager
def _opened(storage: str) -> Iterator[None]:
    """Failures to reach or read the storage as one line naming `--storage`."""
    try:
        yield
    except (SQLAlchemyError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BridgeError(f"--storage: cannot use {storage}: {reason}") from None


@dataclass(frozen=True)
class Provenance:
    """Where an exported study came from, kept in its user attributes."""

    server: str
    study_id: int
    trainer: str


@dataclass
class Exported:
    """The Optuna trials of a study, and how many of its trials were left out and why."""

    trials: list[FrozenTrial]
    skipped: dict[str, int] = field(default_factory=dict)


def to_optuna_trials(
    definition: StudyDefinition,
    trials: Iterable[dict[str, Any]],
    reports: Iterable[dict[str, Any]],
    provenance: Provenance,
) -> Exported:
    """A study's trials (as the trials route gives them) and per-step reports (as the metrics
    route gives them) as Optuna trials, in trial-number order; unfinished trials are skipped."""
    space = definition.search_space()
    metrics = [o.metric for o in definition.objectives]
    curves: dict[int, dict[int, float]] = defaultdict(dict)
    for report in reports:
        value = report["metrics"].get(metrics[0])
        if isinstance(value, int | float):
            curves[report["trial_number"]][report["step"]] = float(value)
    exported = Exported([])
    for trial in sorted(trials, key=lambda t: t["number"]):
        if trial["state"] not in _STATES:
            exported.skipped[trial["state"]] = exported.skipped.get(trial["state"], 0) + 1
            continue
        try:
            frozen = _frozen(space, metrics, trial, curves.get(trial["number"], {}), provenance)
        except ValueError:
            # A grid value outside the range, say: no Optuna distribution holds it.
            why = "outside Optuna's distributions"
            exported.skipped[why] = exported.skipped.get(why, 0) + 1
            continue
        exported.trials.append(frozen)
    return exported


def _frozen(
    space: Space,
    metrics: list[str],
    trial: dict[str, Any],
    curve: dict[int, float],
    provenance: Provenance,
) -> FrozenTrial:
    state, reason = _STATES[trial["state"]], trial["reason"]
    got = trial["values"] or {}
    values = [got.get(m) for m in metrics] if state == TrialState.COMPLETE else None
    if values is not None and not all(isinstance(v, int | float) for v in values):
        # Optuna's complete trials must have every objective: one without is a failed one.
        state, values, reason = TrialState.FAIL, None, reason or "no objective value"
    # A coarse round's trial carries the epochs it trained outside the space: Optuna's
    # params are the space's, the rest rides along as an attribute.
    params = {k: v for k, v in trial["params"].items() if k in space.params}
    settings = {k: v for k, v in trial["params"].items() if k not in space.params}
    attrs = {
        "hpsearch_settings": settings or None,
        "hpsearch_server": provenance.server,
        "hpsearch_study_id": provenance.study_id,
        "hpsearch_trial_number": trial["number"],
        "hpsearch_trainer": provenance.trainer,
        "hpsearch_values": got,
        "worker": trial["worker"],
        "reason": reason,
    }
    frozen = optuna.trial.create_trial(
        state=state,
        values=values,
        params=encode(space, params),
        distributions={name: distribution(space.params[name]) for name in params},
        user_attrs={k: v for k, v in attrs.items() if v is not None},
        intermediate_values=curve,
    )
    started = trial["started_at"] or trial["queued_at"]
    frozen.datetime_start = datetime.fromisoformat(started)
    frozen.datetime_complete = datetime.fromisoformat(trial["finished_at"] or started)
    return frozen


def write_study(
    storage: str,
    name: str,
    definition: StudyDefinition,
    exported: Exported,
    provenance: Provenance,
    overwrite: bool = False,
) -> optuna.Study:
    """Write the exported trials as a new Optuna study `name` in `storage` (an RDB URL).

    An existing study of that name is refused (appending would mix two studies' trials),
    unless `overwrite`, which deletes it first."""
    with _opened(storage):
        return _write(storage, name, definition, exported, provenance, overwrite)


def _write(
    storage: str,
    name: str,
    definition: StudyDefinition,
    exported: Exported,
    provenance: Provenance,
    overwrite: bool,
) -> optuna.Study:
    if name in optuna.study.get_all_study_names(storage):
        if not overwrite:
            raise BridgeError(
                f"--study-name: {storage} already has a study {name!r}; pick another name,"
                " or pass --overwrite to replace it"
            )
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=[o.direction for o in definition.objectives],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o.metric for o in definition.objectives])
    study.set_user_attr("hpsearch_server", provenance.server)
    study.set_user_attr("hpsearch_study_id", provenance.study_id)
    study.set_user_attr("hpsearch_trainer", provenance.trainer)
    study.add_trials(exported.trials)
    return study


@dataclass
class History:
    """An Optuna study's complete trials as a study file's `history`, and what was left out."""

    entries: list[dict[str, Any]]
    optuna_numbers: list[int]
    """The Optuna trial number of each entry, to name it in errors."""
    skipped: dict[str, int] = field(default_factory=dict)


def read_history(
    storage: str, name: str, definition: StudyDefinition, skip_invalid: bool = False
) -> History:
    """The complete trials of Optuna study `name` in `storage`, as history for `definition`.

    Their directions must be the study file's objectives'. A trial whose params are not a
    point of the space (an unknown or missing parameter, a value out of range) is an error
    naming it, or with `skip_invalid` is left out and counted."""
    with _opened(storage):
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            known = ", ".join(optuna.study.get_all_study_names(storage)) or "none"
            message = f"--study: no study {name!r} in {storage} (it has: {known})"
            raise BridgeError(message) from None
        trials = study.get_trials(deepcopy=False)
    wanted = [o.direction for o in definition.objectives]
    found = [d.name.lower() for d in study.directions]
    if found != wanted:
        raise BridgeError(
            f"objective: the study file {'/'.join(wanted)}s, Optuna study {name!r}"
            f" {'/'.join(found)}s"
        )
    return history_of(trials, definition.search_space(), skip_invalid)


def history_of(trials: Sequence[FrozenTrial], space: Space, skip_invalid: bool) -> History:
    """Complete `trials` as history entries over `space`; the others counted by state."""
    history = History([], [])
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            state = trial.state.name.lower()
            history.skipped[state] = history.skipped.get(state, 0) + 1
            continue
        params = {name: decode(space, name, value) for name, value in trial.params.items()}
        if (mismatch := space.mismatch(params)) is not None:
            if not skip_invalid:
                raise BridgeError(
                    f"Optuna trial {trial.number}: params.{mismatch[0]}: {mismatch[1]}"
                    " (make the study file's space cover it, or pass --skip-invalid)"
                )
            history.skipped["not in the space"] = history.skipped.get("not in the space", 0) + 1
            continue
        history.entries.append({"params": params, "values": list(trial.values)})
        history.optuna_numbers.append(trial.number)
    return history


def decode(space: Space, name: str, value: Any) -> Any:
    """An Optuna param value as the space's value: a categorical's JSON text read back."""
    param = space.params.get(name)
    if not isinstance(param, CategoricalParam) or value in param.choices:
        return value
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value
