"""Request dependencies as `Annotated` aliases: session and caller lifecycles live here only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from hpsearch.api.auth import CALLER_STATE, Caller, authenticate
from hpsearch.api.errors import DATABASE
from hpsearch.db.session import session_scope
from hpsearch.worker.dispatch import Dispatcher


def _session() -> Iterator[Session]:
    with session_scope() as session:
        yield session
    DATABASE.succeeded()  # ends an outage the error handlers logged, if there was one


def _dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


def _caller(request: Request, session: SessionDep) -> Caller:
    found = getattr(request.state, CALLER_STATE, None)  # `AuthenticateFirst` saw a body coming
    return found if found is not None else authenticate(request, session)


SessionDep = Annotated[Session, Depends(_session)]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
CallerDep = Annotated[Caller, Depends(_caller)]
