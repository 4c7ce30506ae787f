"""Schemathesis against the live OpenAPI schema of a real `hpsearch serve`: every operation,
with a valid token, answers no 5xx and only what its schema documents."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

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

from api.main import create_app
from tests.servers import ManagedProcess, free_port

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")


class LiveServer:
    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    env = {
        "HPSEARCH_DATABASE_URL": f"sqlite:///{folder / 'hpsearch.db'}",
        # Generated studies are valid ones too: keep what they may ask for small.
        "HPSEARCH_MAX_TRIALS": "3",
        "HPSEARCH_MAX_PARALLELISM": "1",
        "HPSEARCH_RATE_LIMIT_PER_S": "10000",
        "HPSEARCH_RATE_LIMIT_BURST": "10000",
    }
    server = ManagedProcess(
        [HPSEARCH, "serve", "--host", "127.0.0.1", "--port", str(port)],
        log_dir=folder,
        name="api",
        env=env,
    )
    try:
        server.wait_for_http(f"http://127.0.0.1:{port}/health")
        token = re.search(r"hps_[\w-]+", server.log_path.read_text())
        assert token is not None, server.describe()
        yield LiveServer(f"http://127.0.0.1:{port}", token.group(0))
    finally:
        server.stop()


# The operations are collected from the app's schema; the first test checks that the live
# server serves exactly this schema, so the run below covers what is live.
SCHEMA = create_app().openapi()
schema = schemathesis.openapi.from_dict(SCHEMA)


def test_the_live_server_serves_the_schema_under_test(live: LiveServer) -> None:
    assert httpx.get(f"{live.base}/openapi.json").json() == SCHEMA


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_schema(case: Case, live: LiveServer) -> None:
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
