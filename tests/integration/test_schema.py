"""Schemathesis against the live OpenAPI schema of a real `hpsearch serve`: every operation,
with a valid token, answers no 5xx and only what its schema documents."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from hpsearch.api.main import create_app
from tests.servers import LiveApi, serving_api


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    folder = tmp_path_factory.mktemp("schemathesis")
    env = {
        "HPSEARCH_DATABASE_URL": f"sqlite:///{folder / 'hpsearch.db'}",
        # Generated studies are valid ones too: keep what they may ask for small.
        "HPSEARCH_MAX_TRIALS": "3",
        "HPSEARCH_MAX_PARALLELISM": "1",
        "HPSEARCH_RATE_LIMIT_PER_S": "10000",
        "HPSEARCH_RATE_LIMIT_BURST": "10000",
    }
    with serving_api(folder, env) as api:
        yield api


# The operations are collected from the app's schema; the first test checks that the live
# server serves exactly this schema, so the run below covers what is live.
SCHEMA = create_app().openapi()
schema = schemathesis.openapi.from_dict(SCHEMA)


def test_the_live_server_serves_the_schema_under_test(live: LiveApi) -> None:
    assert httpx.get(f"{live.base}/openapi.json").json() == SCHEMA


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_schema(case: Case, live: LiveApi) -> None:
    case.call_and_validate(
        base_url=live.base,
        headers={"Authorization": f"Bearer {live.token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
