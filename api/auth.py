"""Who is calling: the bearer token, the caller's teams and roles, and their request rate."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.orm import Session

from api.errors import Forbidden, Invalid, NotFound, RateLimited, Unauthorized
from db import accounts
from db.accounts import ROLE_RANK
from db.models import Role
from db.settings import get_settings


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
    """The caller behind the request's bearer token, or 401."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    identity = accounts.authenticate(session, secret.strip())
    if identity is None:
        raise Unauthorized("invalid, expired or revoked token")
    _LIMITER.take(accounts.hash_token(secret.strip()))
    return Caller(
        user_id=identity.user_id,
        user=identity.user,
        token_id=identity.token_id,
        roles={t.team_id: t.role for t in identity.teams},
        team_names={t.team_id: t.team for t in identity.teams},
    )


class _TokenBuckets:
    """A token bucket per API token (by its hash), in this process: `rate` requests/s, bursts
    of `burst`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, tuple[float, float]] = {}  # token hash -> (level, at)

    def take(self, token: str) -> None:
        settings = get_settings()
        rate, burst = settings.rate_limit_per_s, float(settings.rate_limit_burst)
        now = time.monotonic()
        with self.lock:
            level, at = self.buckets.get(token, (burst, now))
            level = min(burst, level + (now - at) * rate)
            if level < 1.0:
                self.buckets[token] = (level, now)
                raise RateLimited((1.0 - level) / rate)
            self.buckets[token] = (level - 1.0, now)


_LIMITER = _TokenBuckets()
