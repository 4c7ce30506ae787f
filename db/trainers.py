"""Trainer offers: which worker can run which trainer, as the workers announce it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hpsearch.db.models import TrainerOffer

# Offers of workers unseen this long are forgotten when another worker announces itself: the
# table keeps what workers offer, not every process that ever ran.
FORGET_AFTER = timedelta(days=7)


def offer(
    session: Session, worker: str, host: str, trainers: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Record that `worker` offers `trainers` (name, version, config_schema, step_metrics,
    final_metrics each) as of `now`, in place of what it offered before."""
    session.execute(
        delete(TrainerOffer).where(
            (TrainerOffer.worker == worker) | (TrainerOffer.last_seen_at < now - FORGET_AFTER)
        )
    )
    session.add_all(
        TrainerOffer(worker=worker, host=host, last_seen_at=now, **trainer) for trainer in trainers
    )


def still_offered(session: Session, worker: str, now: datetime) -> bool:
    """Mark `worker`'s offers seen `now`; False when it has none live (e.g. withdrawn)."""
    touched = session.execute(
        update(TrainerOffer)
        .where(TrainerOffer.worker == worker, TrainerOffer.withdrawn_at.is_(None))
        .values(last_seen_at=now)
    )
    return bool(touched.rowcount)  # type: ignore[attr-defined]


def withdraw(session: Session, worker: str, now: datetime) -> None:
    """`worker` is stopping: its offers stop counting as live now (their schemas stay)."""
    session.execute(
        update(TrainerOffer).where(TrainerOffer.worker == worker).values(withdrawn_at=now)
    )


def _live(since: datetime) -> Any:
    return (TrainerOffer.last_seen_at >= since) & TrainerOffer.withdrawn_at.is_(None)


def latest(session: Session, name: str) -> TrainerOffer | None:
    """The most recently seen offer of trainer `name`, whoever made it."""
    return session.scalars(
        select(TrainerOffer)
        .where(TrainerOffer.name == name)
        .order_by(TrainerOffer.last_seen_at.desc())
        .limit(1)
    ).first()


def is_offered(session: Session, name: str, since: datetime) -> bool:
    """Whether some worker seen since `since` offers trainer `name`."""
    found = session.execute(
        select(TrainerOffer.id).where(TrainerOffer.name == name, _live(since)).limit(1)
    ).first()
    return found is not None


def summary(session: Session, since: datetime) -> list[tuple[TrainerOffer, list[str]]]:
    """Each trainer's latest offer, with the host of each worker seen since `since` that offers
    it (one entry per worker, sorted; empty when no live worker does)."""
    live = session.execute(
        select(TrainerOffer.name, TrainerOffer.host).where(_live(since)).order_by(TrainerOffer.host)
    ).all()
    names = session.scalars(select(TrainerOffer.name).distinct()).all()
    return [
        (latest(session, name), [host for offered, host in live if offered == name])  # type: ignore[misc]
        for name in sorted(names)
    ]
