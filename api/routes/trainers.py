"""Trainers: what the workers offer, for writing a study's `config` and `space`."""

from __future__ import annotations

from fastapi import APIRouter

from hpsearch.api.deps import CallerDep, SessionDep
from hpsearch.api.schemas import TrainerPublic
from hpsearch.api.views import trainers_public

router = APIRouter(prefix="/api/v1/trainers", tags=["trainers"])


@router.get("")
def list_trainers(session: SessionDep, caller: CallerDep) -> list[TrainerPublic]:
    """Every trainer a worker has offered, its schema, settings and metrics, and which live
    workers offer it now. Trainers are installed by whoever runs the workers: every team sees
    them."""
    return trainers_public(session)
