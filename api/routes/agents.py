"""Agents: lease a study's trial, report its steps (the heartbeat), finish it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import StreamingResponse

from hpsearch.api import leases
from hpsearch.api.access import study_for
from hpsearch.api.deps import CallerDep, DispatcherDep, SessionDep
from hpsearch.api.errors import Conflict
from hpsearch.api.params import DatasetRef, StudyId, TrialNumber
from hpsearch.api.schemas import (
    AgentName,
    FinishCreate,
    LeaseCreate,
    LeasePublic,
    OfferCreate,
    OfferPublic,
    ReportAnswer,
    ReportCreate,
    TrialPublic,
)
from hpsearch.db.models import Role, StudyStatus

router = APIRouter(prefix="/api/v1/studies/{study_id}", tags=["agents"])


@router.post("/offer")
def offer_trainer(
    study_id: StudyId, body: OfferCreate, session: SessionDep, caller: CallerDep
) -> OfferPublic:
    """This agent runs `trainer`, for the study's team: the team's studies naming it are
    accepted (checked against its schema, when it declares one), they are not `waiting` while
    it is offered, and the Trainers page lists this agent's host. Offer again every
    `heartbeat_s`; an offer unrenewed for `lease_s` is not live any more."""
    study = study_for(session, caller, study_id, Role.MEMBER)
    return leases.offer(session, study, body)


@router.post(
    "/lease",
    response_model=LeasePublic,
    responses={204: {"description": "No trial is queued now: ask again in a moment."}},
)
def lease_trial(
    study_id: StudyId,
    body: LeaseCreate,
    session: SessionDep,
    caller: CallerDep,
    dispatcher: DispatcherDep,
) -> LeasePublic | Response:
    """Lease the study's next queued trial to this agent (it runs it, reports, finishes it);
    204 when none is queued now, 409 once the study has ended."""
    study = study_for(session, caller, study_id, Role.MEMBER)
    found = leases.lease(session, study, body.agent)
    session.commit()
    dispatcher.dispatch(found.dispatch)
    if found.trial is not None:
        return found.trial
    if found.status != StudyStatus.RUNNING:
        ended = found.status.value if found.status else "deleted"
        raise Conflict(f"status: the study is {ended}; it has no more trials to run", "status")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/trials/{number}/report")
def report_trial(
    study_id: StudyId,
    number: TrialNumber,
    body: ReportCreate,
    session: SessionDep,
    caller: CallerDep,
) -> ReportAnswer:
    """Store the steps this agent's trial reached and renew its lease (no steps: a heartbeat);
    whether to stop now (pruned, or its study cancelled or timed out). 409 when the trial is
    not this agent's any more (e.g. it was silent too long and ended `failed: lost`)."""
    study = study_for(session, caller, study_id, Role.MEMBER)
    return leases.report(session, study, number, body.agent, body.reports)


@router.post("/trials/{number}/release", status_code=status.HTTP_204_NO_CONTENT)
def release_trial(
    study_id: StudyId,
    number: TrialNumber,
    body: LeaseCreate,
    session: SessionDep,
    caller: CallerDep,
    dispatcher: DispatcherDep,
) -> None:
    """Give this agent's trial back, unfinished (the agent is stopping): it is queued again at
    once, as the same trial, its steps dropped, and runs again on any agent or worker. 409
    when it is not this agent's any more."""
    study = study_for(session, caller, study_id, Role.MEMBER)
    requeued = leases.release(session, study, number, body.agent)
    session.commit()
    dispatcher.dispatch(requeued)


@router.get(
    "/trials/{number}/datasets/{ref}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}, "text/csv": {}}}},
)
def trial_dataset(
    study_id: StudyId,
    number: TrialNumber,
    ref: DatasetRef,
    agent: Annotated[AgentName, Query(description="The agent the trial is leased to.")],
    session: SessionDep,
    caller: CallerDep,
) -> StreamingResponse:
    """An upload of the study's team, as this agent's trial reads it (`context.dataset(ref)`:
    an id, `name` or `name@version`, the version the study pinned first): its bytes as
    uploaded, streamed, with its id in `X-Dataset-Id`, its format in `X-Dataset-Format` and its
    content hash as the ETag. 404 for another team's dataset; 409 when the trial is not this
    agent's."""
    study = study_for(session, caller, study_id, Role.MEMBER)
    found = leases.leased_dataset(session, study, number, agent, ref)
    # Ended now, not after the response: the parts are read in transactions of their own,
    # which SQLite would not begin while this one holds its lock.
    session.commit()
    return StreamingResponse(
        leases.dataset_parts(found.id, found.size_bytes),
        media_type="text/csv" if found.format == "csv" else "application/octet-stream",
        headers={
            "Content-Length": str(found.size_bytes),
            "X-Dataset-Id": str(found.id),
            "X-Dataset-Format": found.format,
            "ETag": f'"{found.content_hash}"',
        },
    )


@router.post("/trials/{number}/finish")
def finish_trial(
    study_id: StudyId,
    number: TrialNumber,
    body: FinishCreate,
    session: SessionDep,
    caller: CallerDep,
    dispatcher: DispatcherDep,
) -> TrialPublic:
    """End this agent's trial with its final metrics, or its failure; 409 when it is not this
    agent's any more."""
    study = study_for(session, caller, study_id, Role.MEMBER)
    trial, successors = leases.finish(session, study, number, body.agent, body)
    session.commit()
    dispatcher.dispatch(successors)
    return TrialPublic.model_validate(trial, from_attributes=True)
