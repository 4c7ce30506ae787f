"""Studies: create, list, get."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import DispatcherDep, SessionDep, TeamScope
from api.errors import NotFound
from api.schemas import StudiesPublic, StudyPublic, StudySummary
from api.views import study_public
from db import queries
from search import coordinator
from search.definition import StudyDefinition

router = APIRouter(prefix="/api/v1/studies", tags=["studies"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_study(
    definition: StudyDefinition, session: SessionDep, team_id: TeamScope, dispatcher: DispatcherDep
) -> StudyPublic:
    """Store a study and queue its first trials."""
    study = coordinator.create_study(session, team_id=team_id, definition=definition)
    # The trials may only be dispatched once the study is committed and visible to workers.
    session.commit()
    coordinator.refill(study.id, dispatch=dispatcher.dispatch)
    return study_public(session, study)


@router.get("")
def list_studies(
    session: SessionDep,
    team_id: TeamScope,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> StudiesPublic:
    """The team's studies, newest first."""
    studies = queries.list_studies(session, team_id, limit, offset)
    return StudiesPublic(
        data=[StudySummary.model_validate(s, from_attributes=True) for s in studies],
        count=queries.count_studies(session, team_id),
    )


@router.get("/{study_id}")
def get_study(study_id: int, session: SessionDep, team_id: TeamScope) -> StudyPublic:
    """A study's status, progress and best trial."""
    study = queries.get_study(session, team_id, study_id)
    if study is None:
        raise NotFound("study")
    return study_public(session, study)
