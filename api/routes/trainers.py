"""Trainers: what the workers offer, for writing a study's `config` and `space`."""

from __future__ import annotations

from fastapi import APIRouter

from hpsearch.api.deps import CallerDep, SessionDep
from hpsearch.api.schemas import TrainerPublic
from hpsearch.api.views import live_window
from hpsearch.db import trainers
from hpsearch.db.models import utcnow

router = APIRouter(prefix="/api/v1/trainers", tags=["trainers"])


@router.get("")
def list_trainers(session: SessionDep, caller: CallerDep) -> list[TrainerPublic]:
    """Every trainer a worker has offered, its schema and metrics, and how many live workers
    offer it now. Trainers are installed by whoever runs the workers: every team sees them."""
    return [
        TrainerPublic(
            name=offer.name,
            version=offer.version,
            step_metrics=offer.step_metrics,
            final_metrics=offer.final_metrics,
            config_schema=offer.config_schema,
            workers=workers,
            last_seen_at=offer.last_seen_at,
        )
        for offer, workers in trainers.summary(session, utcnow() - live_window())
    ]
