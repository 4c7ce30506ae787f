"""Fixtures for integration tests: one real Redis and one real PostgreSQL per test session.

Everything collected under tests/integration is marked `integration`, so
`pytest -m "not integration"` runs the fast suite alone.

The lead starts the API and workers with `tests.servers.ManagedProcess`, e.g.::

    api = ManagedProcess(["hpsearch", "serve", "--host", "127.0.0.1", "--port", str(port)],
                         log_dir=logs_dir, env={"HPSEARCH_DATABASE_URL": fresh_database_url})
    api.wait_for_http(f"http://127.0.0.1:{port}/health")
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.servers import PostgresServer, RedisServer

INTEGRATION_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration as `integration`."""
    for item in items:
        if INTEGRATION_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """An in-memory redis-server on a free port, for the whole session."""
    server = RedisServer(log_dir=tmp_path_factory.mktemp("redis-logs"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL cluster on a free port, for the whole session."""
    server = PostgresServer(log_dir=tmp_path_factory.mktemp("postgres-logs"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def database_factory(postgres_server: PostgresServer) -> Iterator[Callable[[], str]]:
    """Call it to get the SQLAlchemy URL of a new, empty database; all are dropped after."""
    created: list[str] = []

    def make() -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        url = postgres_server.create_database(name)
        created.append(name)
        return url

    yield make
    for name in created:
        try:
            postgres_server.drop_database(name)
        except psycopg.Error as exc:  # e.g. the test stopped the server: nothing to clean
            warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)


@pytest.fixture
def fresh_database_url(database_factory: Callable[[], str]) -> str:
    """SQLAlchemy URL of a new, empty database on the session's PostgreSQL."""
    return database_factory()


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    """A folder for this test's process logs (ManagedProcess(..., log_dir=logs_dir))."""
    path = tmp_path / "logs"
    path.mkdir()
    return path
