"""Trainer offers: which worker or agent can run which trainer, as each announces it.

A worker's offer (no team) is every team's; an agent's (`hpsearch agent`, on a user's machine)
is its study's team's alone: every read here takes the team whose offers count besides the
workers'."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, false, select, update
from sqlalchemy.orm import Session

from hpsearch.db.models import TrainerOffer

# Offers of workers unseen this long are forgotten when another worker announces itself: the
# table keeps what workers offer, not every process that ever ran.
FORGET_AFTER = timedelta(days=7)


def offer(
    session: Session,
    worker: str,
    host: str,
    trainers: Sequence[dict[str, Any]],
    now: datetime,
    team_id: int | None = None,
) -> None:
    """Record that `worker` offers `trainers` (name, version, config_schema, step_metrics,
    final_metrics, and declared for an agent's) as of `now`, in place of what it offered before;
    `team_id`: an agent's offer, to that team alone."""
    session.execute(
        delete(TrainerOffer).where(
            (TrainerOffer.worker == worker) & _team_is(team_id)
            | (TrainerOffer.last_seen_at < now - FORGET_AFTER)
        )
    )
    session.add_all(
        TrainerOffer(worker=worker, host=host, last_seen_at=now, team_id=team_id, **trainer)
        for trainer in trainers
    )


def still_offered(session: Session, worker: str, now: datetime, team_id: int | None = None) -> bool:
    """Mark `worker`'s offers seen `now`; False when it has none live (e.g. withdrawn)."""
    touched = session.execute(
        update(TrainerOffer)
        .where(TrainerOffer.worker == worker, TrainerOffer.withdrawn_at.is_(None))
        .where(_team_is(team_id))
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


def _team_is(team_id: int | None) -> Any:
    return TrainerOffer.team_id.is_(None) if team_id is None else TrainerOffer.team_id == team_id


def _visible(team_id: int | None) -> Any:
    """The workers' offers, and the agents' of team `team_id`."""
    return TrainerOffer.team_id.is_(None) | (TrainerOffer.team_id == team_id)


def latest(session: Session, name: str, team_id: int | None = None) -> TrainerOffer | None:
    """The most recently seen offer of trainer `name` by a worker or an agent of `team_id`;
    one that declares its schema and metrics first."""
    return _latest_of(session, name, _visible(team_id))


def is_offered(
    session: Session,
    name: str,
    since: datetime,
    *,
    workers: bool = True,
    team_id: int | None = None,
) -> bool:
    """Whether trainer `name` is offered by a process seen since `since`: a worker (unless
    `workers` is False), or an agent of team `team_id` (when given)."""
    offered_by = TrainerOffer.team_id.is_(None) if workers else false()
    if team_id is not None:
        offered_by = offered_by | (TrainerOffer.team_id == team_id)
    found = session.execute(
        select(TrainerOffer.id).where(TrainerOffer.name == name, _live(since), offered_by).limit(1)
    ).first()
    return found is not None


def summary(
    session: Session, since: datetime, team_ids: Sequence[int] = ()
) -> list[tuple[TrainerOffer, list[str]]]:
    """Each trainer's latest offer, with the host of each worker (or agent of `team_ids`) seen
    since `since` that offers it (one entry per process, sorted; empty when none live does)."""
    visible = TrainerOffer.team_id.is_(None) | TrainerOffer.team_id.in_(team_ids)
    live = session.execute(
        select(TrainerOffer.name, TrainerOffer.host)
        .where(_live(since), visible)
        .order_by(TrainerOffer.host)
    ).all()
    names = session.scalars(select(TrainerOffer.name).where(visible).distinct()).all()
    return [
        (_latest_of(session, name, visible), [host for offered, host in live if offered == name])  # type: ignore[misc]
        for name in sorted(names)
    ]


def _latest_of(session: Session, name: str, visible: Any) -> TrainerOffer | None:
    return session.scalars(
        select(TrainerOffer)
        .where(TrainerOffer.name == name, visible)
        .order_by(TrainerOffer.declared.desc(), TrainerOffer.last_seen_at.desc())
        .limit(1)
    ).first()
