"""Path and query parameters shared by routes, bounded to what the database can hold."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from hpsearch.db import names
from hpsearch.db.names import ShortName

# Ids are 32-bit integers on PostgreSQL: a larger one can name nothing, and must get a 422
# rather than an overflow inside the database driver.
MAX_ID = 2**31 - 1

StudyId = Annotated[int, Path(ge=1, le=MAX_ID)]
DatasetId = Annotated[int, Path(ge=1, le=MAX_ID)]
# How a trainer names an upload (`context.dataset`): its id as digits, `name` or `name@version`.
DatasetRef = Annotated[str, Path(min_length=1, max_length=120)]
TokenId = Annotated[int, Path(ge=1, le=MAX_ID)]
InvitationId = Annotated[int, Path(ge=1, le=MAX_ID)]
TrialNumber = Annotated[int, Path(ge=0, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
Cursor = Annotated[
    int, Query(ge=0, le=MAX_ID, description="Opaque: the last page's next_cursor; 0: the start.")
]
# A study's trials are numbered from 0, so -1 (the default) pages from its first trial.
AfterTrial = Annotated[
    int,
    Query(ge=-1, le=MAX_ID, description="A trial number: only the trials numbered after it."),
]

# Names follow db/names.py's rules and never run longer than their columns.
TeamName = Annotated[ShortName, Path(min_length=1)]
UserName = Annotated[ShortName, Path(min_length=1)]
PresetName = Annotated[names.PresetName, Path()]
TeamForNew = Annotated[
    ShortName | None, Query(min_length=1, description="Team name; default: your only team.")
]
Version = Annotated[
    str, Path(pattern=r"^(latest|[1-9][0-9]{0,8})$", description="A version number, or latest.")
]
