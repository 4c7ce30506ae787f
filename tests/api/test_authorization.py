"""Who may do what, for every route and method of the app, read from its OpenAPI schema: a
route added without an entry here fails `test_every_route_is_in_the_matrix`.

Team alpha owns a study, a dataset, a preset, a token and an invitation to ivy (of team
gamma); bob is in team beta only; vic is a viewer of alpha. Without a token every API route is
401; for bob every alpha object is 404 (it does not exist for him), and alpha's objects are
absent from his listings; vic may read but every write answers 403 and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hpsearch.api.main import create_app
from hpsearch.db.settings import get_settings
from tests.api.conftest import bearer, table_csv, token_maker, wait_done
from tests.conftest import tiny_study

PUBLIC = {("get", "/health"), ("get", "/openapi.json"), ("get", "/docs")}


@dataclass
class Alpha:
    """Team alpha's objects, made through the API by its member ana."""

    study_id: int
    dataset_id: int
    preset: str  # team/name
    token_id: int
    invitation_id: int
    tokens: dict[str, str] = field(default_factory=dict)  # user -> token


@dataclass(frozen=True)
class Case:
    """How to call one route on alpha's objects, and what kind of access it is."""

    path: Callable[[Alpha], str]
    kind: str  # "read" | "write" | "create" | "list" | "own"
    body: Callable[[Alpha], dict[str, Any]] = lambda _: {}
    # For a listing: does this answer show anything of alpha's? It must for `owner`.
    shows_alpha: Callable[[Any, Alpha], bool] | None = None
    owner: str = "ana"


def study_body(_: Alpha) -> dict[str, Any]:
    return {"json": tiny_study(budget={"trials": 1, "parallelism": 1})}


AGENT = {"json": {"agent": "laptop:1"}}


def _ids(answer: Any) -> list[Any]:
    items = answer["data"] if isinstance(answer, dict) and "data" in answer else answer
    return items


MATRIX: dict[tuple[str, str], Case] = {
    ("get", "/api/v1/studies"): Case(
        lambda a: "/api/v1/studies",
        "list",
        shows_alpha=lambda r, a: any(s["id"] == a.study_id for s in _ids(r)),
    ),
    ("post", "/api/v1/studies"): Case(lambda a: "/api/v1/studies?team=alpha", "create", study_body),
    ("get", "/api/v1/studies/{study_id}"): Case(lambda a: f"/api/v1/studies/{a.study_id}", "read"),
    ("get", "/api/v1/studies/{study_id}/importances"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/importances", "read"
    ),
    ("get", "/api/v1/studies/{study_id}/definition"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/definition", "read"
    ),
    ("get", "/api/v1/studies/{study_id}/metrics"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/metrics", "read"
    ),
    ("delete", "/api/v1/studies/{study_id}"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}", "write"
    ),
    ("post", "/api/v1/studies/{study_id}/cancel"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/cancel", "write"
    ),
    ("post", "/api/v1/studies/{study_id}/resume"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/resume", "write"
    ),
    ("get", "/api/v1/studies/{study_id}/trials"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/trials", "read"
    ),
    ("get", "/api/v1/studies/{study_id}/trials/export"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/trials/export?format=csv", "read"
    ),
    ("get", "/api/v1/studies/{study_id}/trials/{number}"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/trials/0", "read"
    ),
    ("get", "/api/v1/studies/{study_id}/trials/{number}/weights"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/trials/0/weights", "read"
    ),
    # An agent's routes: offering its trainer, leasing, reporting and finishing trials are a
    # member's writes.
    ("post", "/api/v1/studies/{study_id}/offer"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/offer",
        "write",
        lambda _: {"json": {"agent": "laptop:1", "host": "laptop", "trainer": {"name": "fit"}}},
    ),
    ("post", "/api/v1/studies/{study_id}/lease"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/lease", "write", lambda _: AGENT
    ),
    ("post", "/api/v1/studies/{study_id}/trials/{number}/report"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/trials/0/report", "write", lambda _: AGENT
    ),
    ("post", "/api/v1/studies/{study_id}/trials/{number}/release"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/trials/0/release", "write", lambda _: AGENT
    ),
    ("get", "/api/v1/studies/{study_id}/trials/{number}/datasets/{ref}"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/trials/0/datasets/{a.dataset_id}",
        "write",
        lambda _: {"params": {"agent": "laptop:1"}},
    ),
    ("post", "/api/v1/studies/{study_id}/trials/{number}/finish"): Case(
        lambda a: f"/api/v1/studies/{a.study_id}/trials/0/finish",
        "write",
        lambda _: {"json": {"agent": "laptop:1", "state": "complete", "values": {"x": 1.0}}},
    ),
    ("get", "/api/v1/datasets"): Case(
        lambda a: "/api/v1/datasets",
        "list",
        shows_alpha=lambda r, a: any(d["id"] == a.dataset_id for d in r),
    ),
    ("post", "/api/v1/datasets"): Case(
        lambda a: "/api/v1/datasets?team=alpha",
        "create",
        lambda _: {"files": {"file": ("other.csv", table_csv(40))}, "data": {"target": "label"}},
    ),
    ("get", "/api/v1/datasets/{dataset_id}"): Case(
        lambda a: f"/api/v1/datasets/{a.dataset_id}", "read"
    ),
    ("delete", "/api/v1/datasets/{dataset_id}"): Case(
        lambda a: f"/api/v1/datasets/{a.dataset_id}", "write"
    ),
    ("get", "/api/v1/presets"): Case(
        lambda a: "/api/v1/presets",
        "list",
        shows_alpha=lambda r, a: any(p["team"] == "alpha" for p in _ids(r)),
    ),
    ("post", "/api/v1/presets"): Case(
        lambda a: "/api/v1/presets",
        "create",
        lambda a: {"json": {"study_id": a.study_id, "trial_number": 0, "name": "again"}},
    ),
    ("get", "/api/v1/presets/{team}/{name}"): Case(lambda a: f"/api/v1/presets/{a.preset}", "read"),
    ("get", "/api/v1/presets/{team}/{name}/{version}"): Case(
        lambda a: f"/api/v1/presets/{a.preset}/1", "read"
    ),
    ("get", "/api/v1/presets/{team}/{name}/{version}/export"): Case(
        lambda a: f"/api/v1/presets/{a.preset}/latest/export", "read"
    ),
    ("get", "/api/v1/presets/{team}/{name}/{version}/weights"): Case(
        lambda a: f"/api/v1/presets/{a.preset}/latest/weights", "read"
    ),
    ("get", "/api/v1/teams"): Case(
        lambda a: "/api/v1/teams",
        "list",
        shows_alpha=lambda r, a: any(t["name"] == "alpha" for t in r),
    ),
    ("get", "/api/v1/teams/{team}/members"): Case(lambda a: "/api/v1/teams/alpha/members", "read"),
    ("get", "/api/v1/teams/{team}/members/{user}"): Case(
        lambda a: "/api/v1/teams/alpha/members/ana", "read"
    ),
    ("put", "/api/v1/teams/{team}/members/{user}"): Case(
        lambda a: "/api/v1/teams/alpha/members/bob", "write", lambda _: {"json": {"role": "admin"}}
    ),
    ("delete", "/api/v1/teams/{team}/members/{user}"): Case(
        lambda a: "/api/v1/teams/alpha/members/ana", "write"
    ),
    ("post", "/api/v1/teams/{team}/invitations"): Case(
        lambda a: "/api/v1/teams/alpha/invitations",
        "write",
        lambda _: {"json": {"user": "bob", "role": "admin"}},
    ),
    ("get", "/api/v1/teams/{team}/invitations"): Case(
        lambda a: "/api/v1/teams/alpha/invitations", "read"
    ),
    ("delete", "/api/v1/teams/{team}/invitations/{invitation_id}"): Case(
        lambda a: f"/api/v1/teams/alpha/invitations/{a.invitation_id}", "write"
    ),
    ("get", "/api/v1/invitations"): Case(
        lambda a: "/api/v1/invitations",
        "list",
        shows_alpha=lambda r, a: any(i["team"] == "alpha" for i in r),
        owner="ivy",
    ),
    ("post", "/api/v1/invitations/{invitation_id}/accept"): Case(
        lambda a: f"/api/v1/invitations/{a.invitation_id}/accept", "write"
    ),
    ("post", "/api/v1/invitations/{invitation_id}/decline"): Case(
        lambda a: f"/api/v1/invitations/{a.invitation_id}/decline", "write"
    ),
    # Trainers are installed by whoever runs the workers: every signed-in caller sees them.
    ("get", "/api/v1/trainers"): Case(lambda a: "/api/v1/trainers", "own"),
    ("get", "/api/v1/me"): Case(
        lambda a: "/api/v1/me",
        "list",
        shows_alpha=lambda r, a: any(t["name"] == "alpha" for t in r["teams"]),
    ),
    ("get", "/api/v1/tokens"): Case(
        lambda a: "/api/v1/tokens",
        "list",
        shows_alpha=lambda r, a: any(t["id"] == a.token_id for t in r),
    ),
    ("post", "/api/v1/tokens"): Case(lambda a: "/api/v1/tokens", "own", lambda _: {"json": {}}),
    ("delete", "/api/v1/tokens/{token_id}"): Case(
        lambda a: f"/api/v1/tokens/{a.token_id}", "write"
    ),
}


def schema_routes(client: TestClient) -> set[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return {(method, path) for path, methods in paths.items() for method in methods}


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app and database for the module: every check below either reads or is refused, so
    the tests cannot disturb each other (each asserts that nothing changed)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('authz') / 'hpsearch.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPSEARCH_DATABASE_URL", url)
        patch.delenv("HPSEARCH_BROKER_URL", raising=False)
        get_settings.cache_clear()
        with TestClient(create_app()) as client:
            client.app.state.make_token = token_maker(url)  # type: ignore[attr-defined]
            yield client
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def alpha(app_client: TestClient) -> Alpha:
    make_token = app_client.app.state.make_token  # type: ignore[attr-defined]
    tokens = {
        "ana": make_token("ana", "alpha", "member"),
        "adam": make_token("adam", "alpha", "admin"),
        "vic": make_token("vic", "alpha", "viewer"),
        "bob": make_token("bob", "beta", "admin"),
        "ivy": make_token("ivy", "gamma", "admin"),
    }
    ana = bearer(tokens["ana"])
    study = app_client.post("/api/v1/studies", json=tiny_study(), headers=ana).json()
    wait_done(app_client, study["id"], headers=ana)
    dataset = app_client.post(
        "/api/v1/datasets",
        files={"file": ("table.csv", table_csv())},
        data={"target": "label"},
        headers=ana,
    ).json()
    preset = app_client.post(
        "/api/v1/presets",
        json={"study_id": study["id"], "trial_number": 0, "name": "tiny"},
        headers=ana,
    )
    assert preset.status_code == 201, preset.text
    token_id = app_client.get("/api/v1/tokens", headers=ana).json()[0]["id"]
    invitation = app_client.post(
        "/api/v1/teams/alpha/invitations",
        json={"user": "ivy", "role": "viewer"},
        headers=bearer(tokens["adam"]),
    )
    assert invitation.status_code == 201, invitation.text
    return Alpha(
        study["id"], dataset["id"], "alpha/tiny", token_id, invitation.json()["id"], tokens
    )


def call(client: TestClient, method: str, case: Case, alpha: Alpha, token: str | None) -> Any:
    headers = bearer(token) if token else {}
    return client.request(method, case.path(alpha), headers=headers, **case.body(alpha))


def test_every_route_is_in_the_matrix(app_client: TestClient) -> None:
    routes = schema_routes(app_client) - PUBLIC
    assert routes - set(MATRIX) == set(), "a new route needs its row in MATRIX"
    assert set(MATRIX) - routes == set(), "MATRIX names a route the app no longer has"


def test_public_routes_need_no_token(app_client: TestClient) -> None:
    for method, path in PUBLIC:
        assert app_client.request(method, path).status_code == 200, path


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_without_a_token_every_route_is_401(
    app_client: TestClient, alpha: Alpha, method: str, path: str
) -> None:
    case = MATRIX[(method, path)]
    for token in (None, "hps_not-a-real-token"):
        response = call(app_client, method, case, alpha, token)
        assert response.status_code == 401, (token, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_another_team_finds_nothing_of_alpha(
    app_client: TestClient, alpha: Alpha, method: str, path: str
) -> None:
    case = MATRIX[(method, path)]
    response = call(app_client, method, case, alpha, alpha.tokens["bob"])
    if case.kind == "list":
        assert response.status_code == 200, response.text
        assert not case.shows_alpha(response.json(), alpha)  # type: ignore[misc]
        own = call(app_client, method, case, alpha, alpha.tokens[case.owner]).json()
        assert case.shows_alpha(own, alpha), "the listing check must see alpha's own objects"  # type: ignore[misc]
    elif case.kind == "own":
        assert response.status_code in (200, 201), response.text
    else:
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    ana = bearer(alpha.tokens["ana"])
    assert app_client.get(f"/api/v1/studies/{alpha.study_id}", headers=ana).status_code == 200
    assert app_client.get(f"/api/v1/datasets/{alpha.dataset_id}", headers=ana).status_code == 200
    ivy = app_client.get("/api/v1/invitations", headers=bearer(alpha.tokens["ivy"])).json()
    assert [i["id"] for i in ivy] == [alpha.invitation_id]


# Tokens and invitations are the caller's own, whatever their role: a viewer manages theirs
# (test_accounts), and another user's is a 404 (above).
TEAM_WRITES = sorted(
    (method, path)
    for (method, path), case in MATRIX.items()
    if case.kind in ("write", "create")
    and not path.startswith(("/api/v1/tokens", "/api/v1/invitations"))
)


@pytest.mark.parametrize(("method", "path"), TEAM_WRITES)
def test_a_viewer_cannot_write(
    app_client: TestClient, alpha: Alpha, method: str, path: str
) -> None:
    case = MATRIX[(method, path)]
    before = app_client.get(
        f"/api/v1/studies/{alpha.study_id}", headers=bearer(alpha.tokens["vic"])
    ).json()
    response = call(app_client, method, case, alpha, alpha.tokens["vic"])
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"
    after = app_client.get(f"/api/v1/studies/{alpha.study_id}", headers=bearer(alpha.tokens["vic"]))
    assert after.json() == before
