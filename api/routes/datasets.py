"""Datasets: upload a CSV or NPZ (validated; under a name, each upload its next version), list,
get, delete."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from hpsearch.api.access import dataset_for
from hpsearch.api.deps import CallerDep, SessionDep
from hpsearch.api.errors import Invalid
from hpsearch.api.params import DatasetId, TeamForNew
from hpsearch.api.schemas import DatasetPublic
from hpsearch.db import datasets
from hpsearch.db.models import Dataset, Role
from hpsearch.db.names import DatasetName, LongName, check_name
from hpsearch.db.settings import get_settings
from hpsearch.worker.engine import ConfigError, Upload, describe_upload

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])


@router.post("", status_code=status.HTTP_201_CREATED, responses={200: {"model": DatasetPublic}})
def upload_dataset(
    file: Annotated[UploadFile, File(description="The table: .csv with a header row, or .npz.")],
    response: Response,
    session: SessionDep,
    caller: CallerDep,
    target: Annotated[LongName | None, Form(description="CSV: the column to predict.")] = None,
    name: Annotated[
        DatasetName | None,
        Form(description="Uploads under one name are its versions. Default: the file's stem."),
    ] = None,
    format: Annotated[
        Literal["csv", "npz"] | None, Form(description="Default: from the file name.")
    ] = None,
    team: TeamForNew = None,
) -> DatasetPublic:
    """Store a dataset as the next version of its name (201), or find the same bytes as that
    name's latest version (200). Study files name it `dataset: {upload: name}` (the latest
    version when the study is submitted) or `{upload: name@version}`."""
    team_id = caller.team_for_new(team)
    filename = file.filename or "upload"
    kind = format or _format_of(filename)
    if name is not None and datasets.upload_id(name) is not None:
        raise Invalid("name: a number names an upload by id; give a name with a letter", "name")
    name = name or _name_of(filename)
    content = file.file.read()
    try:
        summary = describe_upload(Upload(content, kind, get_settings().max_dataset_cells), target)
    except ConfigError as exc:
        field = "target" if exc.field == "dataset.target" else "file"
        raise Invalid(f"{field}: {exc.reason}", field) from None
    dataset, created = datasets.store(
        session,
        team_id=team_id,
        name=name,
        format=kind,
        content=content,
        summary=summary,
        created_by=caller.user_id,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public(dataset, caller.team_names[team_id])


@router.get("")
def list_datasets(session: SessionDep, caller: CallerDep) -> list[DatasetPublic]:
    """Your teams' datasets, newest first."""
    return [
        _public(d, caller.team_names[d.team_id])
        for d in datasets.list_datasets(session, caller.team_ids)
    ]


@router.get("/{dataset_id}")
def get_dataset(dataset_id: DatasetId, session: SessionDep, caller: CallerDep) -> DatasetPublic:
    """One dataset: its columns, rows and hash."""
    dataset = dataset_for(session, caller, dataset_id)
    return _public(dataset, caller.team_names[dataset.team_id])


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: DatasetId, session: SessionDep, caller: CallerDep) -> None:
    """Delete a dataset; studies that used it keep their results."""
    session.delete(dataset_for(session, caller, dataset_id, Role.MEMBER))


def _format_of(filename: str) -> Literal["csv", "npz"]:
    suffix = filename.rsplit(".", 1)[-1].lower()
    if suffix in ("csv", "npz"):
        return suffix  # type: ignore[return-value]
    raise Invalid(f"format: cannot tell the format of {filename!r}; say csv or npz", "format")


def _name_of(filename: str) -> str:
    """The file's stem as the dataset's name, with what a name may not hold made `_`; a file
    name with control or format characters is refused, as every name a user gives."""
    try:
        check_name(filename, 200)
    except ValueError as exc:
        raise Invalid(f"file: its name {exc}; rename it or send a name", "file") from None
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "upload"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:100].lstrip(".-") or "upload"
    return f"{name}_" if datasets.upload_id(name) is not None else name


def _public(dataset: Dataset, team: str) -> DatasetPublic:
    return DatasetPublic(
        id=dataset.id,
        team=team,
        name=dataset.name,
        version=dataset.version,
        ref=f"{dataset.name}@{dataset.version}",
        format=dataset.format,
        content_hash=dataset.content_hash,
        size_bytes=dataset.size_bytes,
        summary=dataset.summary,
        created_at=dataset.created_at,
    )
