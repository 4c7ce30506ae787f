"""The test servers themselves: they start, answer, restart and really stop."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from tests.servers import (
    ManagedProcess,
    PostgresServer,
    RedisServer,
    ServerError,
    free_port,
    pid_alive,
    port_accepts,
)


def assert_gone(pid: int, port: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not port_accepts(port), f"port {port} still accepts connections"


def test_redis_answers_set_and_get(redis_server: RedisServer) -> None:
    client = redis_server.client()
    try:
        assert client.set("hpsearch:test", "42")
        assert client.get("hpsearch:test") == b"42"
    finally:
        client.close()
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"


def test_redis_restart_keeps_port_changes_pid_and_loses_data(tmp_path: Path) -> None:
    with RedisServer(log_dir=tmp_path) as server:
        server.client().set("key", "value")
        old_pid, port = server.pid, server.port
        server.restart()
        assert server.port == port
        assert server.pid != old_pid
        assert not pid_alive(old_pid)
        client = server.client()
        assert client.ping()
        assert client.get("key") is None, "in-memory Redis kept data across a restart"
        client.close()


def test_redis_stop_ends_the_process_and_frees_the_port(tmp_path: Path) -> None:
    server = RedisServer(log_dir=tmp_path).start()
    pid, port = server.pid, server.port
    assert port_accepts(port)
    server.stop()
    assert_gone(pid, port)
    server.stop()  # idempotent


def test_postgres_answers_select_1(postgres_server: PostgresServer) -> None:
    engine = sa.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() == "hpsearch"
    finally:
        engine.dispose()


def _table_names(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_fresh_databases_are_distinct_and_empty(
    fresh_database_url: str, database_factory: Callable[[], str]
) -> None:
    other_url = database_factory()
    assert fresh_database_url != other_url
    assert _table_names(fresh_database_url) == []
    assert _table_names(other_url) == []

    engine = sa.create_engine(fresh_database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE marker (id integer primary key)"))
    engine.dispose()
    assert _table_names(fresh_database_url) == ["marker"]
    assert _table_names(other_url) == [], "databases share tables"


def test_postgres_restart_keeps_port_and_data_with_a_new_pid(tmp_path: Path) -> None:
    with PostgresServer(log_dir=tmp_path) as server:
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('survives')")
        old_pid, port = server.pid, server.port
        server.restart()
        assert (server.port, pid_alive(old_pid)) == (port, False)
        assert server.pid != old_pid
        with psycopg.connect(server.conninfo()) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == ("survives",)


def test_postgres_stop_ends_the_postmaster_frees_the_port_and_removes_the_dir(
    tmp_path: Path,
) -> None:
    server = PostgresServer(log_dir=tmp_path).start()
    pid, port, data_dir = server.pid, server.port, server.data_dir
    # An open session must not delay a fast shutdown.
    conn = psycopg.connect(server.conninfo())
    try:
        assert (data_dir / "postmaster.pid").read_text().splitlines()[0] == str(pid)
        server.stop()
    finally:
        conn.close()
    assert_gone(pid, port)
    assert not data_dir.exists()


HTTP_SERVER = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1"]


def test_managed_process_serves_http_and_stops(logs_dir: Path) -> None:
    port = free_port()
    process = ManagedProcess([*HTTP_SERVER, str(port)], log_dir=logs_dir, name="http")
    try:
        response = process.wait_for_http(f"http://127.0.0.1:{port}/", timeout=15)
        assert response.status_code == 200
    finally:
        process.stop()
    assert_gone(process.pid, port)
    assert process.log_path.parent == logs_dir


def test_managed_process_kill_takes_its_children_down(logs_dir: Path) -> None:
    child_pid_file = logs_dir / "child.pid"
    script = (
        "import subprocess, sys, time, pathlib\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"pathlib.Path({str(child_pid_file)!r}).write_text(str(child.pid))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = ManagedProcess([sys.executable, "-c", script], log_dir=logs_dir, name="parent")
    process.wait_for_log("ready", timeout=15)
    child_pid = int(child_pid_file.read_text())
    process.kill()
    assert process.returncode == -9
    # SIGKILL is delivered asynchronously; give the kernel a moment.
    deadline = time.monotonic() + 5
    while pid_alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child_pid), "child of a killed ManagedProcess survived"


def test_managed_process_failure_reports_the_log_tail(logs_dir: Path) -> None:
    script = "import sys; print('boom: bad config', flush=True); sys.exit(3)"
    process = ManagedProcess([sys.executable, "-c", script], log_dir=logs_dir, name="crasher")
    with pytest.raises(ServerError, match=r"(?s)exited with code 3.*boom: bad config"):
        process.wait_for_http(f"http://127.0.0.1:{free_port()}/health", timeout=15)
    process.stop()
