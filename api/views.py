"""Building response shapes that need more than one row."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from hpsearch.api.schemas import (
    ImportancesPublic,
    MetricReport,
    MetricsPublic,
    SettingPublic,
    StudyPublic,
    StudySummary,
    TrainerPublic,
    TrialPublic,
)
from hpsearch.api.submission import trainer_info
from hpsearch.db import queries, trainers
from hpsearch.db.models import Study, StudyStatus, TrialState, utcnow
from hpsearch.db.settings import get_settings
from hpsearch.search.definition import BUILTIN_TRAINER, StudyDefinition
from hpsearch.search.importance import MAX_TRIALS, param_importances
from hpsearch.search.pareto import pareto_front
from hpsearch.search.strategies.base import Strategy, TrialRecord

# Importances computed in this process, by (database, study, creation time, complete trials):
# the dashboard asks at every poll, and the answer changes only when a trial completes.
_IMPORTANCES: OrderedDict[tuple[str, int, str, int], ImportancesPublic] = OrderedDict()
MAX_CACHED_IMPORTANCES = 32
# Strategies built in this process, by (database, study, creation time): the ETA weighs the
# trials left by what they train at every poll, and a study's definition never changes.
_STRATEGIES: OrderedDict[tuple[str, int, str], Strategy] = OrderedDict()
MAX_CACHED_STRATEGIES = 32
Value = TypeVar("Value")


def study_public(session: Session, study: Study, team: str) -> StudyPublic:
    """A study with its progress counts, best trial and time left."""
    progress = queries.study_progress(session, study.id)
    objectives = study.definition["objective"]
    trainer = study.definition.get("trainer", BUILTIN_TRAINER)
    best = queries.best_trial(session, study.id, objectives[0]["direction"])
    return StudyPublic(
        **_header(study, team),
        objectives=objectives,
        trials_finished=progress.finished,
        trials_in_flight=progress.in_flight,
        trials_imported=progress.imported,
        parallelism=study.parallelism,
        trials_by_state=progress.by_state,
        best_trial=TrialPublic.model_validate(best, from_attributes=True) if best else None,
        pareto_front=_front(session, study, objectives) if len(objectives) > 1 else None,
        strategy_state=study.strategy_state,
        eta_seconds=_eta(session, study, progress),
        trainer=trainer,
        waiting=_waiting(session, study, trainer),
        datasets=study.datasets or {},
    )


def _waiting(session: Session, study: Study, trainer: str) -> str | None:
    if study.status != StudyStatus.RUNNING:
        return None
    since = utcnow() - live_window()
    # A trial running live means a worker or an agent (`hpsearch agent`) serves the study.
    workers, agents = study.runs_on != "agents", study.runs_on != "workers"
    team_id = study.team_id if agents else None
    if trainers.is_offered(
        session, trainer, since, workers=workers, team_id=team_id
    ) or queries.has_live_trial(session, study.id, since):
        return None
    return f"no {'worker' if workers else 'agent'} offers trainer {trainer!r}"


def live_window() -> timedelta:
    """How recently a worker must have been seen to count as alive: as long as a running trial
    may stay silent before it is lost."""
    return timedelta(seconds=get_settings().lost_after_s)


def trainers_public(session: Session, team_ids: Sequence[int]) -> list[TrainerPublic]:
    """Every trainer a worker, or an agent of `team_ids`, has offered, as last announced, with
    the hosts of the live workers and agents offering it and the settings of its config."""
    return [
        TrainerPublic(
            name=offer.name,
            version=offer.version,
            step_metrics=offer.step_metrics,
            final_metrics=offer.final_metrics,
            config_schema=offer.config_schema,
            resumable=offer.resumable,
            workers=len(hosts),
            hosts=hosts,
            last_seen_at=offer.last_seen_at,
            settings=[
                SettingPublic(**dataclasses.asdict(setting))
                for setting in trainer_info(offer).settings()
            ],
        )
        for offer, hosts in trainers.summary(session, utcnow() - live_window(), team_ids)
    ]


def importances_public(session: Session, study: Study) -> ImportancesPublic:
    """The parameters' importances in the first objective, from cache while no trial completed."""
    complete = queries.study_progress(session, study.id).by_state.get(TrialState.COMPLETE.value, 0)
    key = (*_study_key(session, study), complete)
    return _remember(
        _IMPORTANCES, key, lambda: _importances(session, study), MAX_CACHED_IMPORTANCES
    )


def _study_key(session: Session, study: Study) -> tuple[str, int, str]:
    """A study's identity across the databases one process may serve (tests serve several)."""
    return str(session.get_bind().url), study.id, str(study.created_at)


def _remember(
    cache: OrderedDict[Any, Value], key: Hashable, build: Callable[[], Value], limit: int
) -> Value:
    """`cache[key]`, built on a miss; past `limit` entries the least recently used leaves."""
    value = cache.pop(key) if key in cache else build()
    cache[key] = value  # most recently used last
    while len(cache) > limit:
        cache.popitem(last=False)
    return value


def _importances(session: Session, study: Study) -> ImportancesPublic:
    definition = StudyDefinition.model_validate(study.definition)
    objective = definition.objectives[0]
    records = [
        TrialRecord(t.number, t.params, t.state.value, (float(t.values[objective.metric]),))
        for t in queries.latest_complete_trials(session, study.id, MAX_TRIALS)
        if t.values is not None and t.values.get(objective.metric) is not None
    ]
    answer = param_importances(definition.search_space(), records, objective.direction)
    return ImportancesPublic(metric=objective.metric, **answer)


def metrics_public(session: Session, study_id: int, after: int, limit: int) -> MetricsPublic:
    """A page of a study's per-step reports, every trial's, after the cursor `after`."""
    rows = queries.study_metrics(session, study_id, after, limit)
    return MetricsPublic(
        data=[MetricReport(trial_number=r.number, step=r.step, metrics=r.metrics) for r in rows],
        next_cursor=rows[-1].id if rows else after,
    )


def study_summary(study: Study, team: str, tally: queries.Tally) -> StudySummary:
    """A study as the studies list shows it: enough for a progress bar and the best value."""
    objective = study.definition["objective"][0]
    return StudySummary(
        **_header(study, team),
        trials_finished=tally.finished,
        best_value=tally.lowest if objective["direction"] == "minimize" else tally.highest,
        best_metric=objective["metric"],
    )


def _header(study: Study, team: str) -> dict[str, Any]:
    """The fields the study page and the studies list both show."""
    return {
        "id": study.id,
        "name": study.name,
        "team": team,
        "tags": study.tags,
        "status": study.status.value,
        "strategy": study.definition["strategy"]["type"],
        "budget_trials": study.budget_trials,
        "created_at": study.created_at,
        "finished_at": study.finished_at,
    }


def _eta(session: Session, study: Study, progress: queries.Progress) -> float | None:
    # From stored times only, so that the answer (and its ETag) changes only when trials do.
    if (
        study.status != StudyStatus.RUNNING
        or not progress.finished
        or not progress.last_finished_at
    ):
        return None
    # Weighed by what the trials train: coarse_to_fine's first rounds train a fraction of the
    # epochs, so counting trials alone would promise its full-epoch rounds far too soon.
    strategy = _remember(
        _STRATEGIES,
        _study_key(session, study),
        lambda: StudyDefinition.model_validate(study.definition).make_strategy(),
        MAX_CACHED_STRATEGIES,
    )
    done = strategy.cost(0, progress.finished)
    left = strategy.cost(progress.finished, study.budget_trials)
    elapsed = (progress.last_finished_at - study.created_at).total_seconds()
    return round(elapsed / done * left, 1)


def _front(session: Session, study: Study, objectives: list[dict]) -> list[TrialPublic]:
    metrics = [o["metric"] for o in objectives]
    complete = [
        t
        for t in queries.trials_of(session, study.id)
        if t.state == TrialState.COMPLETE and t.values and all(m in t.values for m in metrics)
    ]
    points = [[t.values[m] for m in metrics] for t in complete]  # type: ignore[index]
    front = pareto_front(points, [o["direction"] for o in objectives])
    return [TrialPublic.model_validate(complete[i], from_attributes=True) for i in front]
