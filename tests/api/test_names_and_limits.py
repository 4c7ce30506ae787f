"""Names a user gives are printable, tags and preset names follow their published patterns,
and failed authentications are rate-limited like tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from hpsearch.api.schemas import AgentName
from hpsearch.db.names import NAME_PATTERN, PRESET_NAME_PATTERN, TAG_PATTERN
from hpsearch.db.settings import get_settings
from tests.api.conftest import MakeToken, bearer, table_csv
from tests.conftest import tiny_study

# ESC of an ANSI sequence that clears a terminal, a bidi override, a zero-width joiner, a line
# separator, DEL, a C1 control, and an invisible tag character (beyond the BMP).
HOSTILE = ["a\x1b[2Jb", "gpj.\u202eexe", "a\u200db", "a\u2028b", "a\x7f", "a\x9bb", "a\U000e0041"]


def error_of(answer) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    assert answer.status_code == 422, answer.text
    return answer.json()["error"]["field"], answer.json()["error"]["message"]


@pytest.mark.parametrize("name", HOSTILE)
def test_every_user_given_name_refuses_control_and_format_characters(
    client: TestClient, name: str
) -> None:
    field, message = error_of(client.post("/api/v1/studies", json=tiny_study(name=name)))
    assert field == "name" and "control, format or line-separator" in message
    upload = client.post(
        "/api/v1/datasets",
        files={"file": ("t.csv", table_csv())},
        data={"target": "label", "name": name},
    )
    assert error_of(upload)[0] == "name"
    by_file = client.post(
        "/api/v1/datasets", files={"file": (f"{name}.csv", table_csv())}, data={"target": "label"}
    )
    assert error_of(by_file)[0] == "file"
    assert error_of(client.post("/api/v1/tokens", json={"name": name}))[0] == "name"
    assert error_of(client.get(f"/api/v1/teams/{quote(name)}/members"))[0] == "team"
    assert error_of(client.get("/api/v1/studies", params={"name": name}))[0] == "name"
    assert client.get("/api/v1/datasets").json() == []


@pytest.mark.parametrize("name", [".", "..", "a/b", "-x", "modèle", "x" * 101])
def test_a_preset_name_is_an_ascii_identifier(client: TestClient, name: str) -> None:
    body = {"study_id": 1, "trial_number": 0, "name": name}
    assert error_of(client.post("/api/v1/presets", json=body))[0] == "name"


@pytest.mark.parametrize("tag", ["café", "٣", "a b", "-a", "x" * 41])
def test_tags_follow_their_published_pattern(client: TestClient, tag: str) -> None:
    field, message = error_of(client.post("/api/v1/studies", json=tiny_study(tags=[tag])))
    assert field.startswith("tags") and TAG_PATTERN in message
    assert error_of(client.get("/api/v1/studies", params={"tag": tag}))[0] == "tag"


def test_openapi_publishes_the_patterns_that_are_enforced(app_client: TestClient) -> None:
    schema = app_client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert components["StudyDefinition"]["properties"]["tags"]["items"]["pattern"] == TAG_PATTERN
    assert components["StudyDefinition"]["properties"]["name"]["pattern"] == NAME_PATTERN
    assert components["PresetCreate"]["properties"]["name"]["pattern"] == PRESET_NAME_PATTERN
    assert components["TokenCreate"]["properties"]["name"]["pattern"] == NAME_PATTERN
    (team,) = [
        p
        for p in schema["paths"]["/api/v1/teams/{team}/members"]["get"]["parameters"]
        if p["name"] == "team"
    ]
    assert team["schema"]["pattern"] == NAME_PATTERN


# A class of Unicode characters (\w, \d, \s, \p{..}, or a set holding one) repeated a bounded
# number of times: pydantic's regex engine (Rust's) compiles it into that many copies of the
# class. `[\w.-]{0,99}` cost every process that imported the study file's models 50 ms.
BOUNDED_UNICODE_CLASS = re.compile(
    r"(\\[wWdDsSpP]|\[(?:\\.|[^\]\\])*\\[wWdDsSpP](?:\\.|[^\]\\])*\])\{\d*,?\d*\}"
)


def patterns_in(document: Any) -> Iterator[str]:
    """Every `pattern` of a JSON schema, however deep."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from patterns_in(value)
    elif isinstance(document, list):
        for item in document:
            yield from patterns_in(item)


def test_no_published_pattern_repeats_a_unicode_class_a_bounded_number_of_times(
    app_client: TestClient,
) -> None:
    patterns = set(patterns_in(app_client.get("/openapi.json").json()))
    assert TAG_PATTERN in patterns  # the walk finds them
    assert BOUNDED_UNICODE_CLASS.search(r"^[A-Za-z_][\w.-]{0,99}$")  # and the check sees one
    assert [p for p in patterns if BOUNDED_UNICODE_CLASS.search(p)] == []


def test_a_length_taken_out_of_a_pattern_is_still_enforced(client: TestClient) -> None:
    study = tiny_study(objective={"metric": "m" * 101, "direction": "minimize"})
    field, message = error_of(client.post("/api/v1/studies", json=study))
    assert field == "objective.metric" and "at most 100 characters" in message
    study = tiny_study(objective={"metric": "m" * 100, "direction": "minimize"})
    field, message = error_of(client.post("/api/v1/studies", json=study))  # the engine's metrics
    assert field == "objective.metric" and "unknown metric" in message
    agent = TypeAdapter(AgentName)
    assert agent.validate_python("a" * 150)
    for refused in ("a" * 151, "", "a b"):
        with pytest.raises(ValidationError):
            agent.validate_python(refused)


def test_failed_authentications_are_rate_limited_per_address(
    app_client: TestClient, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSEARCH_RATE_LIMIT_BURST", "3")
    monkeypatch.setenv("HPSEARCH_RATE_LIMIT_PER_S", "0.1")
    get_settings.cache_clear()
    valid = bearer(make_token("ana", "alpha"))
    wrong = bearer("hps_not-a-real-token")
    answers = [
        app_client.get("/api/v1/me", headers=wrong),
        app_client.get("/api/v1/me"),
        app_client.post("/api/v1/tokens", json={}, headers=wrong),
        app_client.get("/api/v1/me", headers=wrong),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 10
    # The address is refused before any token is looked up: a valid one waits too, on the
    # route that authenticates before the body as on the others.
    assert app_client.get("/api/v1/me", headers=valid).status_code == 429
    assert app_client.post("/api/v1/tokens", json={}, headers=valid).status_code == 429


def test_a_team_named_in_a_query_is_a_printable_name_too(client: TestClient) -> None:
    for path in ("/api/v1/studies", "/api/v1/studies?limit=5"):
        assert error_of(client.get(path, params={"team": "a\x1bb"}))[0] == "team"
    refused = client.post("/api/v1/studies", json=tiny_study(), params={"team": "a\u202eb"})
    assert error_of(refused)[0] == "team"
    upload = client.post(
        "/api/v1/datasets",
        files={"file": ("t.csv", table_csv())},
        data={"target": "label"},
        params={"team": "\x9b2J"},
    )
    assert error_of(upload)[0] == "team"
