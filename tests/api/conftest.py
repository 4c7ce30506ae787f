"""An app on a fresh SQLite database with accounts made straight in it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from db import accounts
from db.migrate import upgrade
from db.models import Role
from db.session import session_scope

MakeToken = Callable[..., str]


@pytest.fixture
def make_token(sqlite_url: str) -> MakeToken:
    """`make_token(user, team, role)`: a token of `user`, who gets `role` in `team` (both made
    when missing)."""
    upgrade(sqlite_url)

    def make(user: str, team: str, role: str = "member") -> str:
        with session_scope(sqlite_url) as session:
            found_team = accounts.team_named(session, team) or accounts.create_team(session, team)
            found_user = accounts.user_named(session, user) or accounts.create_user(session, user)
            accounts.set_role(session, found_user.id, found_team.id, Role(role))
            return accounts.issue_token(session, found_user.id, "test", None)[1]

    return make


def bearer(token: str) -> dict[str, str]:
    """The header a token is sent in."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app_client(sqlite_url: str) -> Iterator[TestClient]:
    """A client of the app with no credentials."""
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def client(app_client: TestClient, make_token: MakeToken) -> TestClient:
    """A client signed in as `ana`, a member of team `alpha`."""
    app_client.headers.update(bearer(make_token("ana", "alpha")))
    return app_client
