"""Fetching an object for a caller: it exists for them only if it is in one of their teams."""

from __future__ import annotations

from sqlalchemy.orm import Session

from hpsearch.api.auth import Caller
from hpsearch.api.errors import NotFound
from hpsearch.db.models import Dataset, Role, Study


def study_for(session: Session, caller: Caller, study_id: int, role: Role = Role.VIEWER) -> Study:
    """The study, if the caller's role in its team allows `role`'s actions; else 404 / 403."""
    study = session.get(Study, study_id)
    if study is None:
        raise NotFound("study")
    caller.require(study.team_id, role, "study")
    return study


def dataset_for(
    session: Session, caller: Caller, dataset_id: int, role: Role = Role.VIEWER
) -> Dataset:
    """The dataset, if the caller's role in its team allows `role`'s actions; else 404 / 403."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound("dataset")
    caller.require(dataset.team_id, role, "dataset")
    return dataset
