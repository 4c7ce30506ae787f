"""A study's trials, paged by trial number for incremental polling, and one trial with its curve."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from hpsearch.api.access import study_for
from hpsearch.api.deps import CallerDep, SessionDep
from hpsearch.api.errors import NotFound
from hpsearch.api.etag import NOT_MODIFIED, etagged
from hpsearch.api.exports import attachment, rows_csv, trials_table
from hpsearch.api.params import AfterTrial, StudyId, TrialNumber
from hpsearch.api.schemas import TrialDetail, TrialPublic, TrialsPublic
from hpsearch.db import checkpoints, queries
from hpsearch.search.definition import StudyDefinition

router = APIRouter(prefix="/api/v1/studies/{study_id}/trials", tags=["trials"])


@router.get("", response_model=TrialsPublic, responses=NOT_MODIFIED)
def list_trials(
    study_id: StudyId,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    after: AfterTrial = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """The trials numbered after `after`, in number order."""
    study_for(session, caller, study_id)
    trials = queries.trials_after(session, study_id, after, limit)
    page = TrialsPublic(
        data=[TrialPublic.model_validate(t, from_attributes=True) for t in trials],
        next_cursor=trials[-1].number if trials else after,
    )
    return etagged(request, page)


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
)
def export_trials(
    study_id: StudyId,
    session: SessionDep,
    caller: CallerDep,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
) -> Response:
    """Every trial as one flat row: number, state, reason, value, `values.<metric>`,
    `params.<path>`, started_at, finished_at; CSV with a header, or JSON, a list of rows."""
    study = study_for(session, caller, study_id)
    columns, rows = trials_table(session, study)
    filename = f"study-{study.id}-trials.{format}"
    if format == "json":
        return attachment(json.dumps(rows), "application/json", filename)
    return attachment(rows_csv(rows, columns), "text/csv", filename)


@router.get("/{number}", response_model=TrialDetail, responses=NOT_MODIFIED)
def get_trial(
    study_id: StudyId, number: TrialNumber, request: Request, session: SessionDep, caller: CallerDep
) -> Response:
    """One trial: its params, the full config it trained with, its learning curve, and the
    traceback of the exception that ended it, if one did."""
    study = study_for(session, caller, study_id)
    trial = queries.trial_by_number(session, study.id, number)
    if trial is None:
        raise NotFound("trial")
    definition = StudyDefinition.model_validate(study.definition)
    detail = TrialDetail(
        **TrialPublic.model_validate(trial, from_attributes=True).model_dump(),
        config=definition.trial_document(trial.params),
        curve=[{"step": m.step, **m.metrics} for m in queries.metrics_of(session, trial.id)],
        traceback=trial.traceback,
    )
    return etagged(request, detail)


@router.get(
    "/{number}/weights",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_weights(
    study_id: StudyId, number: TrialNumber, session: SessionDep, caller: CallerDep
) -> Response:
    """A complete trial's trained model as its trainer saved it: for the built-in engine an
    NPZ file of `param/<name>` and `buffer/<name>` arrays and `meta`, the engine version and
    the config as JSON. 404 when the trial kept none (not complete, or the study's
    `checkpoints.keep_weights` off, or over the size limit)."""
    study = study_for(session, caller, study_id)
    trial = queries.trial_by_number(session, study.id, number)
    content = None if trial is None else checkpoints.weights_of(session, trial.id)
    if content is None:
        raise NotFound("trial weights" if trial is not None else "trial")
    filename = f"study-{study.id}-trial-{number}.npz"
    return attachment(content, "application/octet-stream", filename)
