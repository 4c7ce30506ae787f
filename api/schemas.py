"""Wire shapes of the REST API, named by role; separate from the tables in `db/models.py`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class TrialPublic(BaseModel):
    id: int
    number: int
    params: dict[str, Any]
    state: str
    reason: str | None
    value: float | None
    values: dict[str, Any] | None
    worker: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    next_cursor: int
    """Pass as `after` to get only the trials inserted since this page."""


class StudyPublic(BaseModel):
    id: int
    name: str
    status: str
    strategy: str
    objectives: list[dict[str, Any]]
    trials_finished: int
    trials_in_flight: int
    budget_trials: int
    parallelism: int
    trials_by_state: dict[str, int]
    best_trial: TrialPublic | None
    pareto_front: list[TrialPublic] | None = None
    """Multi-objective studies: the completed trials no other trial dominates."""
    strategy_state: dict[str, Any]
    """What the strategy shows of itself, e.g. coarse_to_fine's box of every round."""
    created_at: datetime
    finished_at: datetime | None


class StudySummary(BaseModel):
    id: int
    name: str
    status: str
    budget_trials: int
    created_at: datetime
    finished_at: datetime | None


class StudiesPublic(BaseModel):
    data: list[StudySummary]
    count: int


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
