"""Tokens and team membership through the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from db.models import ApiToken, utcnow
from db.session import session_scope
from db.settings import get_settings
from tests.api.conftest import MakeToken, bearer


def test_a_member_cannot_manage_members_and_an_admin_can(
    app_client: TestClient, make_token: MakeToken
) -> None:
    ana, adam = bearer(make_token("ana", "alpha")), bearer(make_token("adam", "alpha", "admin"))
    make_token("vic", "alpha", "viewer")
    path = "/api/v1/teams/alpha/members/vic"
    assert app_client.put(path, json={"role": "member"}, headers=ana).status_code == 403
    assert app_client.put(path, json={"role": "member"}, headers=adam).status_code == 200
    members = app_client.get("/api/v1/teams/alpha/members", headers=ana).json()
    assert {m["name"]: m["role"] for m in members} == {
        "adam": "admin",
        "ana": "member",
        "vic": "member",
    }
    # The last admin can neither leave nor step down: a team keeps someone who can manage it.
    assert app_client.delete("/api/v1/teams/alpha/members/adam", headers=adam).status_code == 409
    demote = app_client.put(
        "/api/v1/teams/alpha/members/adam", json={"role": "member"}, headers=adam
    )
    assert demote.status_code == 409
    assert app_client.delete(path, headers=adam).status_code == 204
    assert app_client.get("/api/v1/me", headers=bearer(make_token("vic", "beta"))).json()[
        "teams"
    ] == [{"id": 2, "name": "beta", "role": "member"}]


def test_a_token_is_shown_once_stored_hashed_and_listed_by_prefix(
    client: TestClient, sqlite_url: str
) -> None:
    created = client.post("/api/v1/tokens", json={"name": "laptop", "expires_in_days": 30})
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("hps_") and len(secret) > 40
    assert secret.startswith(created.json()["prefix"]) and len(created.json()["prefix"]) < 16
    with session_scope(sqlite_url) as session:
        stored = session.scalars(select(ApiToken).where(ApiToken.name == "laptop")).one()
        assert secret not in (stored.token_hash, stored.prefix)
        assert len(stored.token_hash) == 64
    listed = client.get("/api/v1/tokens").json()
    assert all("token" not in t for t in listed)
    assert {t["name"] for t in listed} == {"test", "laptop"}
    assert client.get("/api/v1/me", headers=bearer(secret)).json()["name"] == "ana"


def test_revocation_takes_effect_at_once(client: TestClient) -> None:
    secret = client.post("/api/v1/tokens", json={"name": "ci"}).json()["token"]
    token_id = next(t["id"] for t in client.get("/api/v1/tokens").json() if t["name"] == "ci")
    assert client.get("/api/v1/studies", headers=bearer(secret)).status_code == 200
    assert client.delete(f"/api/v1/tokens/{token_id}").status_code == 204
    response = client.get("/api/v1/studies", headers=bearer(secret))
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    revoked = next(t for t in client.get("/api/v1/tokens").json() if t["id"] == token_id)
    assert revoked["revoked_at"] is not None


def test_a_team_admin_sees_and_revokes_a_members_tokens_and_nobody_elses(
    app_client: TestClient, make_token: MakeToken
) -> None:
    ana_secret = make_token("ana", "alpha")
    adam = bearer(make_token("adam", "alpha", "admin"))
    bob = bearer(make_token("bob", "beta", "admin"))
    path = "/api/v1/teams/alpha/members/ana/tokens"
    listed = app_client.get(path, headers=adam)
    assert listed.status_code == 200
    assert [t["prefix"] for t in listed.json()] == [ana_secret[: len(listed.json()[0]["prefix"])]]
    assert all("token" not in t for t in listed.json())
    token_id = listed.json()[0]["id"]
    # A member may not manage another member's tokens; another team's admin finds nothing.
    assert app_client.get(path, headers=bearer(ana_secret)).status_code == 403
    assert app_client.get(path, headers=bob).status_code == 404
    assert app_client.get("/api/v1/teams/beta/members/ana/tokens", headers=bob).status_code == 404
    assert app_client.delete(f"{path}/{token_id}", headers=bob).status_code == 404
    assert app_client.get("/api/v1/me", headers=bearer(ana_secret)).status_code == 200
    # bob's token id, asked for as ana's, is not ana's: nothing is revoked.
    bob_token = app_client.get("/api/v1/tokens", headers=bob).json()[0]["id"]
    assert app_client.delete(f"{path}/{bob_token}", headers=adam).status_code == 404
    assert app_client.get("/api/v1/me", headers=bob).status_code == 200

    assert app_client.delete(f"{path}/{token_id}", headers=adam).status_code == 204
    refused = app_client.get("/api/v1/me", headers=bearer(ana_secret))
    assert refused.status_code == 401
    assert app_client.get(path, headers=adam).json()[0]["revoked_at"] is not None


def test_an_expired_token_is_refused(client: TestClient, sqlite_url: str) -> None:
    secret = client.post("/api/v1/tokens", json={"name": "old"}).json()["token"]
    with session_scope(sqlite_url) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.name == "old")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert client.get("/api/v1/me", headers=bearer(secret)).status_code == 401


def test_too_many_requests_get_429_with_retry_after(
    client: TestClient, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSEARCH_RATE_LIMIT_BURST", "3")
    monkeypatch.setenv("HPSEARCH_RATE_LIMIT_PER_S", "0.1")
    get_settings.cache_clear()
    answers = [client.get("/api/v1/me") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 10
    # The limit is per token: another token is still served.
    assert client.get("/api/v1/me", headers=bearer(make_token("bob", "beta"))).status_code == 200
