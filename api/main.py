"""The FastAPI app: wiring only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from hpsearch.api.auth import AuthenticateFirst
from hpsearch.api.dashboard import mount_dashboard
from hpsearch.api.errors import install_error_handlers
from hpsearch.api.limits import BodyLimit
from hpsearch.api.routes import (
    account,
    agents,
    datasets,
    presets,
    studies,
    teams,
    trainers,
    trials,
)
from hpsearch.api.schemas import ErrorResponse
from hpsearch.db.migrate import upgrade_at_start
from hpsearch.db.settings import get_settings
from hpsearch.worker.dispatch import make_dispatcher

UPLOADS = "/api/v1/datasets"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    upgrade_at_start()
    settings = get_settings()
    app.state.dispatcher = make_dispatcher(settings.local_workers or 2)
    try:
        yield
    finally:
        app.state.dispatcher.shutdown()


def _body_limit(path: str) -> int:
    settings = get_settings()
    return settings.max_upload_bytes if path.startswith(UPLOADS) else settings.max_body_bytes


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# Every operation may answer these, in the one error shape.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("The body could not be parsed (e.g. not JSON, or not UTF-8)."),
    401: _error("No valid bearer token."),
    403: _error("Your role in the object's team does not allow this."),
    404: _error("No such object among your teams'."),
    409: _error("The object's state does not allow this now."),
    413: _error("The request body is over the limit."),
    422: _error("The request is invalid; `field` names where."),
    429: _error(
        "Too many requests for this token, or failed sign-ins from this address; see Retry-After."
    ),
    503: _error("The database cannot be reached now; see Retry-After."),
}


def create_app() -> FastAPI:
    """The hpsearch REST API."""
    app = FastAPI(title="hpsearch", version="0.1.0", lifespan=_lifespan, responses=ERRORS)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit_for=_body_limit)
    app.add_middleware(AuthenticateFirst)  # added last: runs first, before any body is read
    for module in (studies, trials, agents, datasets, presets, teams, account, trainers):
        app.include_router(module.router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    mount_dashboard(app)
    return app
