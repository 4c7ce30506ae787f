"""Uploaded datasets, stored once per team by content hash."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import LargeBinary, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hpsearch.db.models import Dataset, Study

# An uploaded dataset is named by its id in a config: ASCII digits, within a 64-bit integer.
_UPLOAD_ID = re.compile(r"[0-9]{1,18}")


def upload_id(name: str) -> int | None:
    """The id a config's `dataset.name` names an upload by; None for any other name."""
    return int(name) if _UPLOAD_ID.fullmatch(name) else None


def content_hash(content: bytes) -> str:
    """The hash a dataset is known by."""
    return hashlib.sha256(content).hexdigest()


def store(
    session: Session,
    *,
    team_id: int,
    name: str,
    format: str,
    content: bytes,
    summary: dict[str, Any],
    created_by: int | None,
) -> tuple[Dataset, bool]:
    """The team's dataset with this content: stored now (True) or found from before (False)."""
    digest = content_hash(content)
    found = _by_hash(session, team_id, digest)
    if found is not None:
        return found, False
    dataset = Dataset(
        team_id=team_id,
        name=name,
        format=format,
        content_hash=digest,
        size_bytes=len(content),
        summary=summary,
        content=content,
        created_by=created_by,
    )
    try:
        with session.begin_nested():
            session.add(dataset)
    except IntegrityError:  # the same bytes uploaded twice at once: one row
        found = _by_hash(session, team_id, digest)
        if found is None:
            raise
        return found, False
    return dataset, True


def _by_hash(session: Session, team_id: int, digest: str) -> Dataset | None:
    return session.scalars(
        select(Dataset).where(Dataset.team_id == team_id, Dataset.content_hash == digest)
    ).one_or_none()


def list_datasets(session: Session, team_ids: Sequence[int]) -> Sequence[Dataset]:
    """The datasets of these teams, newest first, without their content."""
    return session.scalars(
        select(Dataset).where(Dataset.team_id.in_(team_ids)).order_by(Dataset.id.desc())
    ).all()


def upload_of(session: Session, dataset_id: int, study_id: int) -> Dataset | None:
    """A dataset of the study's team (without its content), for an agent about to train a
    trial of `study_id` on it; None for another team's, as `content_of`."""
    study_team = select(Study.team_id).where(Study.id == study_id).scalar_subquery()
    return session.scalars(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.team_id == study_team)
    ).one_or_none()


def content_part(session: Session, dataset_id: int, offset: int, length: int) -> bytes:
    """`length` bytes of a dataset's content from `offset`, read without the rest: so a large
    upload is sent a part at a time, never held whole, in time linear in its size."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # SQLite's substr() reads the whole blob for every part; its blob handle reads the
        # part alone (the id is the row id: an INTEGER PRIMARY KEY).
        raw = connection.connection.driver_connection
        with raw.blobopen("datasets", "content", dataset_id, readonly=True) as blob:  # type: ignore[union-attr]
            blob.seek(offset)
            return blob.read(length)
    # PostgreSQL reads only the TOAST chunks of the part, the column's storage being EXTERNAL
    # (uncompressed; migration 0006): a compressed value is decompressed whole for each part.
    part = session.scalar(
        select(func.substr(Dataset.content, offset + 1, length, type_=LargeBinary)).where(
            Dataset.id == dataset_id
        )
    )
    return bytes(part or b"")


def content_of(session: Session, dataset_id: int, study_id: int) -> tuple[bytes, str] | None:
    """A dataset's bytes and format, for a worker about to train a trial of `study_id` on it;
    None unless the dataset belongs to the study's team, whatever the config says."""
    study_team = select(Study.team_id).where(Study.id == study_id).scalar_subquery()
    row = session.execute(
        select(Dataset.content, Dataset.format).where(
            Dataset.id == dataset_id, Dataset.team_id == study_team
        )
    ).one_or_none()
    return (row[0], row[1]) if row else None
