"""An app on a fresh SQLite database with accounts made straight in it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from hpsearch.api.main import create_app
from hpsearch.db import accounts
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Role
from hpsearch.db.session import session_scope

MakeToken = Callable[..., str]


def token_maker(url: str) -> MakeToken:
    """`make_token(user, team, role)`: a token of `user`, who gets `role` in `team` (both made
    when missing), on the database at `url`."""
    upgrade(url)

    def make(user: str, team: str, role: str = "member") -> str:
        with session_scope(url) as session:
            found_team = accounts.team_named(session, team) or accounts.create_team(session, team)
            found_user = accounts.user_named(session, user) or accounts.create_user(session, user)
            accounts.set_role(session, found_user.id, found_team.id, Role(role))
            return accounts.issue_token(session, found_user.id, "test", None)[1]

    return make


@pytest.fixture
def make_token(sqlite_url: str) -> MakeToken:
    """A `token_maker` on the test's database."""
    return token_maker(sqlite_url)


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


def wait_done(
    client: TestClient, study_id: int, timeout_s: float = 60, headers: dict | None = None
) -> dict:
    """The study once it is no longer running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        study = client.get(f"/api/v1/studies/{study_id}", headers=headers).json()
        if study["status"] != "running":
            return study
        time.sleep(0.1)
    raise AssertionError(f"study {study_id} did not finish in {timeout_s}s")


def table_csv(rows: int = 30) -> bytes:
    """A small CSV: two numeric features, a categorical one with a missing cell, a class."""
    lines = ["x1,x2,colour,label"]
    for i in range(rows):
        colour = "" if i == 3 else ("red", "green", "blue")[i % 3]
        lines.append(f"{i * 0.5},{(i * 7) % 11},{colour},{'yes' if i % 2 else 'no'}")
    return ("\n".join(lines) + "\n").encode()
