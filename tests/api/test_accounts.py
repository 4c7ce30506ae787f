"""Tokens and team membership through the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from hpsearch.db.models import ApiToken, utcnow
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from tests.api.conftest import MakeToken, bearer, table_csv


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


def test_a_member_is_read_by_any_member_of_the_team_and_no_one_else(
    app_client: TestClient, make_token: MakeToken
) -> None:
    vic = bearer(make_token("vic", "alpha", "viewer"))
    make_token("adam", "alpha", "admin")
    bob = bearer(make_token("bob", "beta"))
    answer = app_client.get("/api/v1/teams/alpha/members/adam", headers=vic)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"user_id": 2, "name": "adam", "role": "admin"}
    # A user of another team, and another team's member, are as absent as a name nobody has.
    for path, headers in [
        ("/api/v1/teams/alpha/members/bob", vic),
        ("/api/v1/teams/alpha/members/nobody", vic),
        ("/api/v1/teams/alpha/members/adam", bob),
    ]:
        missing = app_client.get(path, headers=headers)
        assert missing.status_code == 404, (path, missing.text)
        assert missing.json()["error"]["code"] == "not_found"


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


def test_an_admin_cannot_put_a_user_of_another_team_into_theirs(
    app_client: TestClient, make_token: MakeToken
) -> None:
    ana = bearer(make_token("ana", "alpha"))
    bob = bearer(make_token("bob", "beta", "admin"))
    added = app_client.put("/api/v1/teams/beta/members/ana", json={"role": "admin"}, headers=bob)
    assert added.status_code == 404
    assert [t["name"] for t in app_client.get("/api/v1/me", headers=ana).json()["teams"]] == [
        "alpha"
    ]
    members = app_client.get("/api/v1/teams/beta/members", headers=bob).json()
    assert [m["name"] for m in members] == ["bob"]


def test_a_user_joins_a_team_by_accepting_its_invitation(
    app_client: TestClient, make_token: MakeToken
) -> None:
    ana = bearer(make_token("ana", "alpha"))
    bob = bearer(make_token("bob", "beta", "admin"))
    cy = bearer(make_token("cy", "alpha"))
    invited = app_client.post(
        "/api/v1/teams/beta/invitations", json={"user": "ana", "role": "viewer"}, headers=bob
    )
    assert invited.status_code == 201, invited.text
    invitation = invited.json()
    assert {k: invitation[k] for k in ("team", "user", "role", "invited_by")} == {
        "team": "beta",
        "user": "ana",
        "role": "viewer",
        "invited_by": "bob",
    }
    assert app_client.get("/api/v1/teams/beta/invitations", headers=bob).json() == [invitation]
    assert app_client.get("/api/v1/invitations", headers=ana).json() == [invitation]
    assert app_client.get("/api/v1/invitations", headers=cy).json() == []
    # Pending is not joined: beta does not exist for ana yet, and nobody else can accept for her.
    assert app_client.get("/api/v1/teams/beta/members", headers=ana).status_code == 404
    accept = f"/api/v1/invitations/{invitation['id']}/accept"
    assert app_client.post(accept, headers=cy).status_code == 404
    assert app_client.post(accept, headers=bob).status_code == 404

    joined = app_client.post(accept, headers=ana)
    assert joined.status_code == 200, joined.text
    assert joined.json() == {"id": 2, "name": "beta", "role": "viewer"}
    assert app_client.get("/api/v1/me", headers=ana).json()["teams"] == [
        {"id": 1, "name": "alpha", "role": "member"},
        {"id": 2, "name": "beta", "role": "viewer"},
    ]
    assert app_client.get("/api/v1/invitations", headers=ana).json() == []
    assert app_client.get("/api/v1/teams/beta/invitations", headers=bob).json() == []
    assert app_client.post(accept, headers=ana).status_code == 404
    again = app_client.post("/api/v1/teams/beta/invitations", json={"user": "ana"}, headers=bob)
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "user"


def test_a_declined_or_withdrawn_invitation_is_gone(
    app_client: TestClient, make_token: MakeToken
) -> None:
    ana = bearer(make_token("ana", "alpha"))
    bob = bearer(make_token("bob", "beta", "admin"))
    invitations = "/api/v1/teams/beta/invitations"
    first = app_client.post(invitations, json={"user": "ana"}, headers=bob).json()
    duplicate = app_client.post(invitations, json={"user": "ana"}, headers=bob)
    assert duplicate.status_code == 409
    assert "pending invitation" in duplicate.json()["error"]["message"]
    declined = app_client.post(f"/api/v1/invitations/{first['id']}/decline", headers=ana)
    assert declined.status_code == 204
    assert app_client.get(invitations, headers=bob).json() == []
    assert app_client.get("/api/v1/invitations", headers=ana).json() == []
    assert [t["name"] for t in app_client.get("/api/v1/me", headers=ana).json()["teams"]] == [
        "alpha"
    ]

    second = app_client.post(invitations, json={"user": "ana"}, headers=bob).json()
    assert app_client.get("/api/v1/invitations", headers=ana).json() == [second]
    assert app_client.delete(f"{invitations}/{second['id']}", headers=bob).status_code == 204
    assert app_client.get("/api/v1/invitations", headers=ana).json() == []
    assert (
        app_client.post(f"/api/v1/invitations/{second['id']}/accept", headers=ana).json()["error"][
            "code"
        ]
        == "not_found"
    )
    assert app_client.delete(f"{invitations}/{second['id']}", headers=bob).status_code == 404


def test_a_name_outside_the_team_gets_the_answer_of_a_name_nobody_has(
    app_client: TestClient, make_token: MakeToken
) -> None:
    """Team admins learn nothing of the user names outside their team."""
    make_token("ana", "alpha")
    bob = bearer(make_token("bob", "beta", "admin"))
    for method, json in (("put", {"role": "member"}), ("delete", None)):
        answers = [
            app_client.request(method, f"/api/v1/teams/beta/members/{name}", json=json, headers=bob)
            for name in ("ana", "nobody")
        ]
        assert [a.status_code for a in answers] == [404, 404]
        assert answers[0].content == answers[1].content
        assert answers[0].headers.get("content-type") == answers[1].headers.get("content-type")

    invited = {
        name: app_client.post("/api/v1/teams/beta/invitations", json={"user": name}, headers=bob)
        for name in ("ana", "nobody")
    }
    assert [a.status_code for a in invited.values()] == [201, 201]
    ana, nobody = (a.json() for a in invited.values())
    assert ana.keys() == nobody.keys()
    assert {**ana, "id": 0, "user": "", "created_at": ""} == {
        **nobody,
        "id": 0,
        "user": "",
        "created_at": "",
    }
    listed = app_client.get("/api/v1/teams/beta/invitations", headers=bob).json()
    assert [i["user"] for i in listed] == ["ana", "nobody"]
    # An invitation to a name nobody had reaches no one, even a user given that name later.
    later = bearer(make_token("nobody", "gamma"))
    assert app_client.get("/api/v1/invitations", headers=later).json() == []
    answers = [
        app_client.delete(f"/api/v1/teams/beta/invitations/{i['id']}", headers=bob)
        for i in (ana, nobody)
    ]
    assert [a.status_code for a in answers] == [204, 204]


def test_team_admins_no_longer_reach_a_members_tokens(
    app_client: TestClient, make_token: MakeToken
) -> None:
    ana_secret = make_token("ana", "alpha")
    ana_secret_beta = make_token("ana", "beta")
    adam = bearer(make_token("adam", "alpha", "admin"))
    token_id = app_client.get("/api/v1/tokens", headers=bearer(ana_secret)).json()[-1]["id"]
    path = "/api/v1/teams/alpha/members/ana/tokens"
    assert app_client.get(path, headers=adam).status_code in (404, 405)
    assert app_client.delete(f"{path}/{token_id}", headers=adam).status_code in (404, 405)
    for secret in (ana_secret, ana_secret_beta):
        assert app_client.get("/api/v1/me", headers=bearer(secret)).status_code == 200
    tokens = app_client.get("/api/v1/tokens", headers=bearer(ana_secret)).json()
    assert [t["revoked_at"] for t in tokens] == [None, None]


def test_removal_from_a_team_ends_its_access_at_once_and_only_there(
    app_client: TestClient, make_token: MakeToken
) -> None:
    make_token("ana", "alpha")
    ana = bearer(make_token("ana", "beta"))
    adam = bearer(make_token("adam", "alpha", "admin"))
    datasets = {
        team: app_client.post(
            f"/api/v1/datasets?team={team}",
            files={"file": ("table.csv", table_csv())},
            data={"target": "label"},
            headers=ana,
        ).json()["id"]
        for team in ("alpha", "beta")
    }
    for dataset_id in datasets.values():
        assert app_client.get(f"/api/v1/datasets/{dataset_id}", headers=ana).status_code == 200

    assert app_client.delete("/api/v1/teams/alpha/members/ana", headers=adam).status_code == 204
    assert app_client.get(f"/api/v1/datasets/{datasets['alpha']}", headers=ana).status_code == 404
    assert app_client.get(f"/api/v1/datasets/{datasets['beta']}", headers=ana).status_code == 200
    assert [t["name"] for t in app_client.get("/api/v1/me", headers=ana).json()["teams"]] == [
        "beta"
    ]
    tokens = app_client.get("/api/v1/tokens", headers=ana).json()
    assert all(t["revoked_at"] is None for t in tokens)


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
