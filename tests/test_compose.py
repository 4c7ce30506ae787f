"""docker-compose.yml describes a stack that starts in order and scales its workers.

No Docker engine runs in CI: the file is validated by `docker-compose config -q` and by reading
its structure.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
BACKENDS = ("postgres", "redis")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict) and "services" in document, "no services: section"
    return document["services"]


def test_docker_compose_config_is_valid() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose binary not installed (scripts/install-system-deps.sh does)")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"


def test_stack_has_the_four_services(services: dict[str, Any]) -> None:
    assert {"postgres", "redis", "api", "worker"} <= set(services)


def test_worker_is_scalable(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container_name prevents --scale worker=N"
    assert "ports" not in worker, "published ports would collide under --scale worker=N"
    assert _command(worker) == ["hpsearch", "worker"]


@pytest.mark.parametrize("name", ["postgres", "redis", "api", "worker"])
def test_service_has_a_healthcheck(services: dict[str, Any], name: str) -> None:
    test = services[name].get("healthcheck", {}).get("test")
    assert test, f"{name} has no healthcheck test"


def test_healthchecks_probe_the_right_thing(services: dict[str, Any]) -> None:
    assert "pg_isready" in _joined(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli ping" in _joined(services["redis"]["healthcheck"]["test"])
    assert "http://localhost:8000/health" in _joined(services["api"]["healthcheck"]["test"])
    # A worker's check pings its own Celery node (celery@<its container's hostname>).
    worker = services["worker"]["healthcheck"]["test"]
    assert worker[0] == "CMD-SHELL", "the node name needs the shell's $HOSTNAME"
    assert "celery -A hpsearch.worker.tasks inspect ping" in worker[1]
    assert '--destination "celery@$$HOSTNAME"' in worker[1]


def test_a_one_shot_migrate_service_upgrades_the_schema_first(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert _command(migrate) == ["hpsearch", "db", "upgrade"]
    assert migrate.get("restart") == "no", "a one-shot service must not be restarted"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["image"] == services["api"]["image"] == services["worker"]["image"]


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_services_wait_for_the_migration_and_do_not_migrate(
    services: dict[str, Any], name: str
) -> None:
    condition = services[name]["depends_on"].get("migrate", {}).get("condition")
    assert condition == "service_completed_successfully", f"{name} does not wait for migrate"
    assert services[name]["environment"]["HPSEARCH_MIGRATE_ON_START"] == "false"


def test_the_image_takes_extras_as_a_build_argument(services: dict[str, Any]) -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    assert 'ARG HPSEARCH_EXTRAS=""' in lines
    install = next(ln for ln in lines if ln.startswith("RUN pip install"))
    assert "${HPSEARCH_EXTRAS:+[$HPSEARCH_EXTRAS]}" in install
    for name in ("migrate", "api", "worker"):
        assert services[name]["build"]["args"]["HPSEARCH_EXTRAS"] == "${HPSEARCH_EXTRAS:-}"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_services_wait_for_healthy_backends(services: dict[str, Any], name: str) -> None:
    depends_on = services[name].get("depends_on")
    assert isinstance(depends_on, dict), f"{name}: depends_on must use the long form"
    for backend in BACKENDS:
        condition = depends_on.get(backend, {}).get("condition")
        assert condition == "service_healthy", f"{name} does not wait for healthy {backend}"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_services_point_at_the_compose_backends(services: dict[str, Any], name: str) -> None:
    env = services[name]["environment"]
    assert env["HPSEARCH_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["HPSEARCH_DATABASE_URL"]
    assert env["HPSEARCH_BROKER_URL"] == "redis://redis:6379/0"


def test_api_serves_on_port_8000(services: dict[str, Any]) -> None:
    api = services["api"]
    assert _command(api) == ["hpsearch", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert any(str(port).endswith("8000") for port in api["ports"])


def test_dockerfile_installs_with_constraints_as_non_root() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    assert lines[[ln.startswith("FROM") for ln in lines].index(True)] == "FROM python:3.11-slim"
    assert any(ln.startswith("RUN pip install -c constraints.txt") for ln in lines)
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}, "the image must not run as root"


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _joined(test: str | list[str]) -> str:
    return test if isinstance(test, str) else " ".join(test)
