"""Who is calling: the bearer token, the caller's teams and roles, and their request rate."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from hpsearch.api.errors import (
    ApiError,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthorized,
    database_error,
    error_response,
)
from hpsearch.db import accounts
from hpsearch.db.accounts import ROLE_RANK
from hpsearch.db.models import Role
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings

# Methods whose requests carry no body to read: authenticated by the route's dependency.
BODILESS_METHODS = ("GET", "HEAD", "OPTIONS")
# Where `AuthenticateFirst` leaves the caller in the request's state.
CALLER_STATE = "caller"


@dataclass(frozen=True)
class Caller:
    """A request's authenticated user and what they may do in each of their teams."""

    user_id: int
    user: str
    token_id: int
    roles: dict[int, Role] = field(default_factory=dict)  # team id -> role
    team_names: dict[int, str] = field(default_factory=dict)

    @property
    def team_ids(self) -> list[int]:
        """Every team whose objects the caller may read."""
        return list(self.roles)

    def require(self, team_id: int, role: Role, what: str) -> None:
        """Allow the action on an object of `team_id` with at least `role`.

        An object of a team the caller is not in does not exist for them (404, not 403):
        its existence is itself another team's business.
        """
        held = self.roles.get(team_id)
        if held is None:
            raise NotFound(what)
        if ROLE_RANK[held] < ROLE_RANK[role]:
            team = self.team_names[team_id]
            raise Forbidden(f"{what}: needs the {role.value} role in team {team}")

    def team_for_new(self, team: str | None) -> int:
        """The team a new object goes to: the named one, or the caller's only team."""
        if team is None:
            if len(self.roles) == 1:
                team_id = next(iter(self.roles))
                self.require(team_id, Role.MEMBER, "team")
                return team_id
            raise Invalid("team: you belong to several teams (or none); say which", "team")
        return self.team_named(team, Role.MEMBER)

    def team_named(self, team: str, role: Role) -> int:
        """The id of the caller's team `team`, if their role there allows `role`'s actions."""
        for team_id, name in self.team_names.items():
            if name == team:
                self.require(team_id, role, "team")
                return team_id
        raise NotFound("team")


def authenticate(request: Request, session: Session) -> Caller:
    """The caller behind the request's bearer token, or 401.

    Requests that fail count against their client address's bucket, and an address whose
    bucket is empty gets 429 before its token is even looked up: a flood of bad or missing
    tokens costs a dictionary lookup each, not a query.
    """
    address = f"address {request.client.host if request.client else 'unknown'}"
    _LIMITER.take(address, spend=False)
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        _LIMITER.take(address)
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    identity = accounts.authenticate(session, secret.strip())
    if identity is None:
        _LIMITER.take(address)
        raise Unauthorized("invalid, expired or revoked token")
    _LIMITER.take(accounts.hash_token(secret.strip()))
    return Caller(
        user_id=identity.user_id,
        user=identity.user,
        token_id=identity.token_id,
        roles={t.team_id: t.role for t in identity.teams},
        team_names={t.team_id: t.team for t in identity.teams},
    )


class AuthenticateFirst:
    """Authenticate a request that may carry a body before any of it is read.

    FastAPI reads a body (a whole multipart upload, say) before it resolves the route's
    dependencies, and `BodyLimit` reads it even earlier; this middleware, outside both, answers
    401 or 429 from the headers alone. The caller it finds is kept in the request's state for
    `hpsearch.api.deps` to reuse. Bodiless methods authenticate in the route's own session instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODILESS_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            caller = await run_in_threadpool(_authenticate_alone, request)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, str(exc), exc.field)
            response.headers.update({**exc.headers, "Connection": "close"})
            await response(scope, receive, send)
            return
        except Exception as exc:  # e.g. the database is down: a 503, in the one error shape
            await (await database_error(request, exc))(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER_STATE] = caller
        await self.app(scope, receive, send)


def _authenticate_alone(request: Request) -> Caller:
    with session_scope() as session:
        return authenticate(request, session)


# The number of buckets past which those refilled to the full burst (which hold no state) are
# dropped, so that requests from ever new addresses cannot grow the table without bound.
_PRUNE_AT = 10_000


class _TokenBuckets:
    """A token bucket per API token (by its hash) and per client address failing to
    authenticate, in this process: `rate` requests/s, bursts of `burst`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (level, at)
        self.prune_at = _PRUNE_AT

    def take(self, key: str, spend: bool = True) -> None:
        """Spend a request of `key`'s bucket (or only check one is left); 429 when empty."""
        settings = get_settings()
        rate, burst = settings.rate_limit_per_s, float(settings.rate_limit_burst)
        now = time.monotonic()
        with self.lock:
            level, at = self.buckets.get(key, (burst, now))
            level = min(burst, level + (now - at) * rate)
            if level < 1.0:
                self.buckets[key] = (level, now)
                raise RateLimited((1.0 - level) / rate)
            if spend:
                self.buckets[key] = (level - 1.0, now)
                self._prune(now, rate, burst)

    def _prune(self, now: float, rate: float, burst: float) -> None:
        if len(self.buckets) <= self.prune_at:
            return
        self.buckets = {
            key: (level, at)
            for key, (level, at) in self.buckets.items()
            if level + (now - at) * rate < burst
        }
        self.prune_at = max(_PRUNE_AT, 2 * len(self.buckets))


_LIMITER = _TokenBuckets()
