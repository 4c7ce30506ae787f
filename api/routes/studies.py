"""Studies: create, list, get, definition, every trial's curve, importances, cancel, resume,
delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status

from hpsearch.api.access import study_for
from hpsearch.api.deps import CallerDep, DispatcherDep, SessionDep
from hpsearch.api.errors import Conflict
from hpsearch.api.etag import NOT_MODIFIED, etagged
from hpsearch.api.params import Cursor, Offset, StudyId, TeamForNew
from hpsearch.api.schemas import ImportancesPublic, MetricsPublic, StudiesPublic, StudyPublic
from hpsearch.api.submission import submit
from hpsearch.api.views import importances_public, metrics_public, study_public, study_summary
from hpsearch.db import queries
from hpsearch.db.models import Role, StudyStatus
from hpsearch.db.names import LongName, ShortName, Tag
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition

router = APIRouter(prefix="/api/v1/studies", tags=["studies"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        description="Retrying with the same key returns the study the first request made.",
    ),
]


@router.post("", status_code=status.HTTP_201_CREATED, responses={200: {"model": StudyPublic}})
def create_study(
    definition: StudyDefinition,
    response: Response,
    session: SessionDep,
    caller: CallerDep,
    dispatcher: DispatcherDep,
    team: TeamForNew = None,
    idempotency_key: IdempotencyKey = None,
) -> StudyPublic:
    """Store a study and queue its first trials (201), or return the one this key made (200)."""
    team_id = caller.team_for_new(team)
    study, created = submit(session, caller, team_id, definition, idempotency_key)
    # The first trials are queued in the study's own transaction: a study is stored with them
    # or not at all, never left running with nothing queued. They are dispatched only once
    # committed and visible to workers.
    first_trials = coordinator.queue_next(session, study.id) if created else []
    session.commit()
    if first_trials:
        dispatcher.dispatch(first_trials)
    if not created:
        response.status_code = status.HTTP_200_OK
    return study_public(session, study, caller.team_names[team_id])


@router.get("")
def list_studies(
    session: SessionDep,
    caller: CallerDep,
    status: StudyStatus | None = None,
    name: Annotated[LongName | None, Query(description="Part of the name.")] = None,
    tag: Annotated[Tag | None, Query()] = None,
    team: Annotated[ShortName | None, Query(description="Only this team's studies.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> StudiesPublic:
    """The studies of your teams, newest first, filtered and paged."""
    team_ids = [i for i, n in caller.team_names.items() if team is None or n == team]
    selected = queries.StudyFilter(team_ids, status, name, tag)
    studies = queries.list_studies(session, selected, limit, offset)
    tallies = queries.tallies(session, [s.id for s in studies])
    return StudiesPublic(
        data=[
            study_summary(s, caller.team_names[s.team_id], tallies.get(s.id, queries.Tally()))
            for s in studies
        ],
        count=queries.count_studies(session, selected),
    )


@router.get("/{study_id}", response_model=StudyPublic, responses=NOT_MODIFIED)
def get_study(
    study_id: StudyId, request: Request, session: SessionDep, caller: CallerDep
) -> Response:
    """A study's status, progress, best trial and ETA; 304 when the ETag still holds."""
    study = study_for(session, caller, study_id)
    return etagged(request, study_public(session, study, caller.team_names[study.team_id]))


@router.get("/{study_id}/definition")
def get_definition(study_id: StudyId, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    """The study file as stored (defaults filled in, `history` left out: the trials hold it)."""
    return study_for(session, caller, study_id).definition


@router.get("/{study_id}/metrics", response_model=MetricsPublic, responses=NOT_MODIFIED)
def list_metrics(
    study_id: StudyId,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    after: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    """Every trial's per-step reports stored after the cursor, in storage order: the curves
    of a whole study a page at a time (e.g. to export it)."""
    study = study_for(session, caller, study_id)
    return etagged(request, metrics_public(session, study.id, after, limit))


@router.get("/{study_id}/importances", response_model=ImportancesPublic, responses=NOT_MODIFIED)
def get_importances(
    study_id: StudyId, request: Request, session: SessionDep, caller: CallerDep
) -> Response:
    """How much each parameter mattered to the first objective (PED-ANOVA on the latest 1000
    complete trials); cached until a trial completes, and 304 when the ETag still holds."""
    study = study_for(session, caller, study_id)
    return etagged(request, importances_public(session, study))


@router.post("/{study_id}/cancel")
def cancel_study(study_id: StudyId, session: SessionDep, caller: CallerDep) -> StudyPublic:
    """Stop queueing trials; running ones stop at their next report."""
    study = study_for(session, caller, study_id, Role.MEMBER)
    if not coordinator.cancel_study(session, study.id):
        raise Conflict(f"status: the study is {study.status.value}, not running", "status")
    session.refresh(study)
    return study_public(session, study, caller.team_names[study.team_id])


@router.post("/{study_id}/resume")
def resume_study(
    study_id: StudyId, session: SessionDep, caller: CallerDep, dispatcher: DispatcherDep
) -> StudyPublic:
    """Run a cancelled or timed-out study on to its budget."""
    study = study_for(session, caller, study_id, Role.MEMBER)
    try:
        trial_ids = coordinator.resume_study(session, study.id)
    except ValueError as exc:
        raise Conflict(str(exc), "status") from None
    session.commit()
    dispatcher.dispatch(trial_ids)
    return study_public(session, study, caller.team_names[study.team_id])


@router.delete("/{study_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_study(study_id: StudyId, session: SessionDep, caller: CallerDep) -> None:
    """Delete a study with its trials and curves; its running trials stop at their next report."""
    study = study_for(session, caller, study_id, Role.MEMBER)
    coordinator.cancel_study(session, study.id)
    session.delete(study)
