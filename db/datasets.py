"""Uploaded datasets: team-unique names with versions, as presets have. An upload under a name
is its next version, unless it holds the same bytes as the latest one (a retried upload)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import LargeBinary, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hpsearch.db.models import Dataset, Study
from hpsearch.db.names import IDENTIFIER

# An uploaded dataset is named by its id in a config: ASCII digits, within a 64-bit integer.
_UPLOAD_ID = re.compile(r"[0-9]{1,18}")
# `name` or `name@version`: names follow the preset names' rule, so `@` never is part of one.
_REF = re.compile(rf"(?P<name>{IDENTIFIER}{{0,99}})(@(?P<version>[1-9][0-9]{{0,8}}))?")


def upload_id(name: str) -> int | None:
    """The id a config's `dataset.name` (or a trainer's `Context.dataset` ref) names an upload
    by; None for any other name."""
    return int(name) if _UPLOAD_ID.fullmatch(name) else None


def parse_ref(ref: str) -> tuple[str, int | None] | None:
    """`churn@2` -> ("churn", 2), `churn` -> ("churn", None: the latest); None when `ref` is
    no dataset name (with an optional version)."""
    found = _REF.fullmatch(ref)
    if found is None or upload_id(found["name"]) is not None:
        return None
    return found["name"], int(found["version"]) if found["version"] else None


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
    """The team's dataset `name` with this content: stored now as its next version (True), or
    its latest version when that holds the same bytes (False)."""
    digest = content_hash(content)
    for _ in range(5):  # two uploads under one name race for a version number; the loser retries
        latest = find(session, team_id, name, None)
        if latest is not None and latest.content_hash == digest:
            return latest, False
        dataset = Dataset(
            team_id=team_id,
            name=name,
            version=(latest.version if latest else 0) + 1,
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
        except IntegrityError:
            continue
        return dataset, True
    raise RuntimeError(f"could not number a new version of dataset {name!r}")


def find(session: Session, team_id: int, name: str, version: int | None) -> Dataset | None:
    """Version `version` (None: the latest) of the team's dataset `name`."""
    statement = select(Dataset).where(Dataset.team_id == team_id, Dataset.name == name)
    if version is not None:
        statement = statement.where(Dataset.version == version)
    return session.scalars(statement.order_by(Dataset.version.desc()).limit(1)).first()


def resolve(session: Session, team_id: int, ref: str) -> Dataset | None:
    """The team's dataset `ref` names: an id as digits, `name` (latest) or `name@version`."""
    dataset_id = upload_id(ref)
    if dataset_id is not None:
        dataset = session.get(Dataset, dataset_id)
        return dataset if dataset is not None and dataset.team_id == team_id else None
    parsed = parse_ref(ref)
    return None if parsed is None else find(session, team_id, *parsed)


def list_datasets(session: Session, team_ids: Sequence[int]) -> Sequence[Dataset]:
    """The datasets of these teams, newest first, without their content."""
    return session.scalars(
        select(Dataset).where(Dataset.team_id.in_(team_ids)).order_by(Dataset.id.desc())
    ).all()


def upload_for(session: Session, study_id: int, ref: str) -> Dataset | None:
    """The dataset `ref` names (its content not loaded), for a trial of `study_id` about to
    train on it, on a worker or an agent: the version the study pinned when it was submitted,
    else `ref` resolved now; None unless it belongs to the study's team, whatever the config
    says."""
    study = session.get(Study, study_id)
    if study is None:
        return None
    pinned = (study.datasets or {}).get(ref)
    found = session.get(Dataset, pinned["id"]) if pinned else resolve(session, study.team_id, ref)
    return found if found is not None and found.team_id == study.team_id else None


def content_for(session: Session, study_id: int, ref: str) -> tuple[int, bytes, str] | None:
    """The id, bytes and format of `upload_for`'s dataset."""
    found = upload_for(session, study_id, ref)
    return None if found is None else (found.id, found.content, found.format)


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
    # (uncompressed; migration 0008): a compressed value is decompressed whole for each part.
    part = session.scalar(
        select(func.substr(Dataset.content, offset + 1, length, type_=LargeBinary)).where(
            Dataset.id == dataset_id
        )
    )
    return bytes(part or b"")
