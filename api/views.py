"""Building response shapes that need more than one row."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.schemas import StudyPublic, TrialPublic
from db import queries
from db.models import Study, TrialState
from search.pareto import pareto_front


def study_public(session: Session, study: Study) -> StudyPublic:
    """A study with its progress counts and best trial."""
    progress = queries.study_progress(session, study.id)
    objectives = study.definition["objective"]
    best = queries.best_trial(session, study.id, objectives[0]["direction"])
    return StudyPublic(
        id=study.id,
        name=study.name,
        status=study.status.value,
        strategy=study.definition["strategy"]["type"],
        objectives=objectives,
        trials_finished=progress.finished,
        trials_in_flight=progress.in_flight,
        budget_trials=study.budget_trials,
        parallelism=study.parallelism,
        trials_by_state=progress.by_state,
        best_trial=TrialPublic.model_validate(best, from_attributes=True) if best else None,
        pareto_front=_front(session, study, objectives) if len(objectives) > 1 else None,
        strategy_state=study.strategy_state,
        created_at=study.created_at,
        finished_at=study.finished_at,
    )


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
