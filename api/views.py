"""Building response shapes that need more than one row."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.schemas import StudyPublic, TrialPublic
from db import queries
from db.models import Study


def study_public(session: Session, study: Study) -> StudyPublic:
    """A study with its progress counts and best trial."""
    progress = queries.study_progress(session, study.id)
    objective = study.definition["objective"]
    best = queries.best_trial(session, study.id, objective["direction"])
    return StudyPublic(
        id=study.id,
        name=study.name,
        status=study.status.value,
        strategy=study.definition["strategy"]["type"],
        objective=objective,
        trials_finished=progress.finished,
        trials_in_flight=progress.in_flight,
        budget_trials=study.budget_trials,
        parallelism=study.parallelism,
        trials_by_state=progress.by_state,
        best_trial=TrialPublic.model_validate(best, from_attributes=True) if best else None,
        created_at=study.created_at,
        finished_at=study.finished_at,
    )
