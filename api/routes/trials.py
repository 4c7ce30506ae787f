"""A study's trials, paged by cursor for incremental polling."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, TeamScope
from api.errors import NotFound
from api.schemas import TrialPublic, TrialsPublic
from db import queries

router = APIRouter(prefix="/api/v1/studies/{study_id}/trials", tags=["trials"])


@router.get("")
def list_trials(
    study_id: int,
    session: SessionDep,
    team_id: TeamScope,
    after: Annotated[int, Query(ge=0, description="Cursor: the last page's next_cursor.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> TrialsPublic:
    """Trials inserted after the cursor, in insertion order."""
    if queries.get_study(session, team_id, study_id) is None:
        raise NotFound("study")
    trials = queries.trials_after(session, study_id, after, limit)
    return TrialsPublic(
        data=[TrialPublic.model_validate(t, from_attributes=True) for t in trials],
        next_cursor=trials[-1].id if trials else after,
    )
