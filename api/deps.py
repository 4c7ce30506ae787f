"""Request dependencies as `Annotated` aliases: session and team lifecycles live here only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from db import queries
from db.session import session_scope
from worker.dispatch import Dispatcher


def _session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


def _dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


def _team(session: SessionDep) -> int:
    # Until accounts exist every request acts for the embedded mode's one team.
    return queries.ensure_team(session)


SessionDep = Annotated[Session, Depends(_session)]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
TeamScope = Annotated[int, Depends(_team)]
