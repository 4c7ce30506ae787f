"""The FastAPI app: wiring only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import studies, trials
from db.migrate import upgrade
from db.settings import get_settings
from worker.dispatch import make_dispatcher


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    upgrade()
    settings = get_settings()
    app.state.dispatcher = make_dispatcher(settings.local_workers or 2)
    try:
        yield
    finally:
        app.state.dispatcher.shutdown()


def create_app() -> FastAPI:
    """The hpsearch REST API."""
    app = FastAPI(title="hpsearch", version="0.1.0", lifespan=_lifespan)
    install_error_handlers(app)
    app.include_router(studies.router)
    app.include_router(trials.router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
