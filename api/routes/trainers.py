"""Trainers: what the workers offer, for writing a study's `config` and `space`."""

from __future__ import annotations

from fastapi import APIRouter

from hpsearch.api.deps import CallerDep, SessionDep
from hpsearch.api.schemas import TrainerPublic
from hpsearch.api.views import trainers_public

router = APIRouter(prefix="/api/v1/trainers", tags=["trainers"])


@router.get("")
def list_trainers(session: SessionDep, caller: CallerDep) -> list[TrainerPublic]:
    """Every trainer a worker, or an agent of the caller's teams, has offered, its schema,
    settings and metrics, and which live workers and agents offer it now. Trainers installed
    on workers are every team's; an agent's trainer is its team's alone."""
    return trainers_public(session, caller.team_ids)
