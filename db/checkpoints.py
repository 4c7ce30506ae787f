"""Trials' saved states: the latest checkpoint of each running trial, where a retry resumes,
and the trained weights of complete trials."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from hpsearch.db.models import Checkpoint, Trial, TrialMetric, TrialWeights, utcnow


class ResumePoint(NamedTuple):
    """The state a retry starts from: saved by trial `source` after its step `step`."""

    source: int
    step: int
    content: bytes


def keep(session: Session, trial_id: int, step: int, content: bytes) -> None:
    """Store `content` as the trial's checkpoint after `step`, replacing the one before."""
    session.execute(delete(Checkpoint).where(Checkpoint.trial_id == trial_id))
    session.execute(
        insert(Checkpoint).values(
            trial_id=trial_id, step=step, size=len(content), content=content, saved_at=utcnow()
        )
    )


def resume(
    session: Session,
    trial_id: int,
    *,
    study_id: int,
    retry_of: int | None,
    parent: int | None,
) -> ResumePoint | None:
    """Where a trial starts from, if not afresh. A retry resumes the latest checkpoint along
    the trials it runs again (the lost trial, or the one that one retried, ...), with their
    metrics up to its step copied to it, so that its curve has every step once. Failing that,
    a population-based trial starts from the final state of its `parent` (a trial number),
    with a curve of its own."""
    source: int | None = retry_of
    while source is not None:
        found = _checkpoint(session, source)
        if found is not None:
            _copy_steps(session, source, trial_id, found[0])
            return ResumePoint(source, *found)
        source = session.scalar(select(Trial.retry_of).where(Trial.id == source))
    if parent is not None:
        source = session.scalar(
            select(Trial.id).where(Trial.study_id == study_id, Trial.number == parent)
        )
        found = None if source is None else _checkpoint(session, source)
        if found is not None:
            return ResumePoint(source, *found)  # type: ignore[arg-type]
    return None


def _checkpoint(session: Session, trial_id: int) -> tuple[int, bytes] | None:
    found = session.execute(
        select(Checkpoint.step, Checkpoint.content).where(Checkpoint.trial_id == trial_id)
    ).one_or_none()
    return None if found is None else (found[0], found[1])


def _copy_steps(session: Session, source: int, trial_id: int, through: int) -> None:
    rows = session.execute(
        select(TrialMetric.step, TrialMetric.metrics).where(
            TrialMetric.trial_id == source, TrialMetric.step <= through
        )
    ).all()
    session.execute(delete(TrialMetric).where(TrialMetric.trial_id == trial_id))
    if rows:
        session.execute(
            insert(TrialMetric),
            [{"trial_id": trial_id, "step": step, "metrics": metrics} for step, metrics in rows],
        )


def discard(session: Session, trial_id: int) -> None:
    """Drop the checkpoints of an ended trial and of the lost trials it ran again: nothing
    will resume from them."""
    chain, source = [], trial_id
    while source is not None:
        chain.append(source)
        source = session.scalar(select(Trial.retry_of).where(Trial.id == source))
    session.execute(delete(Checkpoint).where(Checkpoint.trial_id.in_(chain)))


def keep_weights(session: Session, trial_id: int, content: bytes) -> None:
    """Store a complete trial's trained weights."""
    session.execute(
        insert(TrialWeights).values(
            trial_id=trial_id, size=len(content), content=content, saved_at=utcnow()
        )
    )


def weights_of(session: Session, trial_id: int) -> bytes | None:
    """The trial's stored weights, or None."""
    return session.scalar(select(TrialWeights.content).where(TrialWeights.trial_id == trial_id))
