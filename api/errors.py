"""One JSON shape for every error: ``{"error": {"code", "message", "field"}}``, never a trace."""

from __future__ import annotations

import logging
import math
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from hpsearch.api.fields import describe_error
from hpsearch.db.outage import Outage
from hpsearch.db.session import unreachable

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A failure the client caused or may retry, answered in the one error shape."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.headers: dict[str, str] = {}


class NotFound(ApiError):
    """The object does not exist, or belongs to another team (the same answer, on purpose)."""

    status, code = 404, "not_found"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers["WWW-Authenticate"] = "Bearer"


class Forbidden(ApiError):
    """The caller may see the object but their role does not allow this."""

    status, code = 403, "forbidden"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooLarge(ApiError):
    status, code = 413, "too_large"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many requests; retry in {retry_after_s:.1f}s")
        self.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))


class Unavailable(ApiError):
    """A server the API depends on (the database) cannot be reached now: retry shortly."""

    status, code = 503, "unavailable"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(retry_after_s)


class Invalid(ApiError):
    """A semantic check of a well-formed request failed (e.g. a dataset without its target)."""

    status, code = 422, "invalid"


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    """The one error shape, with its status."""
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(status_code=status, content=body)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    field, message = describe_error(exc.errors()[0], exc.body)
    return error_response(422, "invalid", message, field)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    response = error_response(exc.status, exc.code, str(exc), exc.field)
    response.headers.update(exc.headers)
    return response


# Long enough for a restart, short enough that a poller sees the database back within seconds.
DATABASE_RETRY_AFTER_S = 5
DATABASE = Outage("database", log)


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """A 503 with Retry-After when the database cannot be reached (logged once per outage),
    else a 500. Handled here rather than by the catch-all: uvicorn logs again what reaches it."""
    if not unreachable(exc):
        return await unexpected_error(request, exc)
    DATABASE.failed(exc)
    message = "the database cannot be reached now; retry shortly"
    return await _api_error(request, Unavailable(message, DATABASE_RETRY_AFTER_S))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A 500 in the one shape, with a request id that finds the logged trace."""
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
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(PoolTimeout, database_error)
    app.add_exception_handler(Exception, unexpected_error)
