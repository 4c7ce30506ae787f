"""One JSON shape for every error: ``{"error": {"code", "message", "field"}}``, never a trace."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class NotFound(Exception):
    """The object does not exist, or belongs to another team (the same answer, on purpose)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    """The one error shape, with its status."""
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(status_code=status, content=body)


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the dotted path a user wrote (``budget.trials``)."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    # Discriminated unions add the tag ("float", "random") as a location part; users never wrote it.
    return ".".join(p for p in parts if p not in ("float", "int", "categorical", "random", "grid"))


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    field = field_path(tuple(first["loc"])) or None
    message = first["msg"].removeprefix("Value error, ")
    return error_response(422, "invalid", f"{field}: {message}" if field else message, field)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, "http_error", str(exc.detail))


async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
    return error_response(404, "not_found", str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = uuid.uuid4().hex[:12]
    log.exception(
        "request %s %s failed (request id %s)", request.method, request.url.path, request_id
    )
    response = error_response(500, "internal", f"internal error; request id {request_id}")
    response.headers["X-Request-ID"] = request_id
    return response


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure a route can meet to the one error shape."""
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(NotFound, _not_found)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
