"""The distributed stack on real servers, shared by the integration tests: an API (uvicorn via
`hpsearch serve`) and Celery workers (`hpsearch worker`) on one PostgreSQL database and one Redis.

Every process runs this checkout's code (`python -m hpsearch.cli.main`; the venv's editable
install maps hpsearch onto this checkout, which tests/conftest.py checks), is our child and is
stopped, killed or restarted by its own pid.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from tests.conftest import ROOT
from tests.servers import ManagedProcess, RedisServer, free_port

HPSEARCH = [sys.executable, "-m", "hpsearch.cli.main"]
TERMINAL = {"complete", "pruned", "failed"}
STUDY_TIMEOUT_S = 240  # a bound for a hung study, not a speed requirement


class Stack:
    """An API and `workers` Celery workers (one trial process each) on one database and broker.

    `env` adds settings for every process, e.g. a short `HPSEARCH_LOST_AFTER_S`.
    """

    def __init__(
        self,
        database_url: str,
        broker_url: str,
        logs: Path,
        workers: int = 2,
        env: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.logs = logs
        self.env = {
            "HPSEARCH_DATABASE_URL": database_url,
            "HPSEARCH_BROKER_URL": broker_url,
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = self._start_api()
        self.started: list[ManagedProcess] = []  # every worker ever started, for their logs
        self.workers = [self.start_worker(wait=False) for _ in range(workers)]
        # The server's first start printed the local admin's token.
        self.token = re.search(r"hps_[\w-]+", self.api.log_path.read_text()).group(0)  # type: ignore[union-attr]
        for worker in self.workers:
            worker.wait_for_log("ready.")

    def _start_api(self) -> ManagedProcess:
        api = ManagedProcess(
            [*HPSEARCH, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            log_dir=self.logs,
            name="api",
            env=self.env,
        )
        api.wait_for_http(f"{self.base}/health")
        return api

    def stop_api(self) -> None:
        """Stop the API (SIGTERM, uvicorn's graceful shutdown); `start_api` brings it back."""
        self.api.stop()

    def start_api(self) -> None:
        """Start the API again on the same port."""
        self.api = self._start_api()

    def start_worker(self, *, wait: bool = True, trainers: str | None = None) -> ManagedProcess:
        """One more worker (running `trainers`, or every one installed); `wait`: until Celery
        says it is ready."""
        number = len(self.started) + 1
        only = ["--trainers", trainers] if trainers else []
        worker = ManagedProcess(
            [*HPSEARCH, "worker", "--concurrency", "1", "--name", f"w{number}@%h", *only],
            log_dir=self.logs,
            name=f"worker{number}",
            env=self.env,
        )
        self.started.append(worker)
        if wait:
            worker.wait_for_log("ready.")
        return worker

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.base, timeout=10, headers=headers)

    def submit(self, definition: dict) -> int:
        with self.client() as client:
            created = client.post("/api/v1/studies", json=definition)
        assert created.status_code == 201, created.text
        return int(created.json()["id"])

    def wait_for_end(self, study_id: int) -> str:
        """The study's final status once none of its trials is queued or running any more,
        read from the database (the API may be away)."""
        query = (
            "SELECT status, (SELECT count(*) FROM trials t WHERE t.study_id = s.id"
            " AND t.state IN ('queued', 'running')) FROM studies s WHERE s.id = :id"
        )
        deadline = time.monotonic() + STUDY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                status, in_flight = self.sql(query, id=study_id)[0]
            except OperationalError:  # the test restarts PostgreSQL
                status, in_flight = "running", 0
            if status != "running" and in_flight == 0:
                return status
            time.sleep(0.3)
        pytest.fail(f"study {study_id} still running after {STUDY_TIMEOUT_S}s:\n{self.describe()}")

    def run_study(self, definition: dict) -> dict:
        study_id = self.submit(definition)
        self.wait_for_end(study_id)
        with self.client() as client:
            return client.get(f"/api/v1/studies/{study_id}").json()

    def sql(self, statement: str, **params: Any) -> list[Any]:
        """Rows of one query on the stack's database, on a connection of its own."""
        engine = create_engine(self.database_url, poolclass=NullPool)
        try:
            with engine.connect() as db:
                return list(db.execute(text(statement), params).all())
        finally:
            engine.dispose()

    def trials_run_per_worker_log(self) -> Counter[int]:
        started: Counter[int] = Counter()
        for worker in self.started:
            for match in re.finditer(r"trial (\d+): running", worker.log_path.read_text()):
                started[int(match.group(1))] += 1
        return started

    def describe(self) -> str:
        return "\n\n".join(p.describe() for p in [self.api, *self.workers])

    def stop(self) -> None:
        """Stop every process at once: each Celery worker takes seconds to shut down."""
        with ThreadPoolExecutor(len(self.started) + 1) as pool:
            list(pool.map(ManagedProcess.stop, [*self.started, self.api]))


@dataclass(frozen=True)
class TrialRow:
    id: int
    number: int
    state: str
    reason: str | None
    params: dict[str, Any]
    grid_index: int | None
    retry_of: int | None
    worker: str | None
    steps: int  # how many per-epoch reports it wrote


def trials_of(stack: Stack, study_id: int) -> list[TrialRow]:
    rows = stack.sql(
        "SELECT t.id, t.number, t.state, t.reason, t.params, t.grid_index, t.retry_of, t.worker,"
        " (SELECT count(*) FROM trial_metrics m WHERE m.trial_id = t.id)"
        " FROM trials t WHERE t.study_id = :id ORDER BY t.number",
        id=study_id,
    )
    return [TrialRow(*row) for row in rows]


def assert_study_ended_whole(
    stack: Stack, study_id: int, *, status: str, finished: int | None = None
) -> list[TrialRow]:
    """The database's account of a study that ended: its status; every trial in exactly one
    terminal state, with a reason where it failed; `finished` trials as the budget counts them
    (a lost trial that ran again gave its place to its retry);
    each lost trial run again at most once, with its own config; no grid point twice and no
    config run twice except after a loss. Returns the trials for further checks."""
    assert stack.wait_for_end(study_id) == status, stack.describe()
    trials = trials_of(stack, study_id)
    assert [t.number for t in trials] == list(range(len(trials))), "numbers have a gap"
    unfinished = [t for t in trials if t.state not in TERMINAL]
    assert not unfinished, f"trials left in flight: {unfinished}"
    assert all(t.reason for t in trials if t.state == "failed"), "a failure without a reason"
    if finished is not None:
        replaced = sum(t.retry_of is not None for t in trials)
        assert len(trials) - replaced == finished, Counter((t.state, t.reason) for t in trials)
    by_id = {t.id: t for t in trials}
    retried = Counter(t.retry_of for t in trials if t.retry_of is not None)
    assert all(n == 1 for n in retried.values()), f"a lost trial ran again twice: {retried}"
    for t in trials:
        if t.retry_of is not None:
            assert by_id[t.retry_of].reason == "lost", f"trial {t.id} retries a trial not lost"
            assert t.params == by_id[t.retry_of].params
    grid = Counter(t.grid_index for t in trials if t.grid_index is not None)
    assert all(n == 1 for n in grid.values()), f"a grid point queued twice: {grid}"
    kept = Counter(json.dumps(t.params, sort_keys=True) for t in trials if t.reason != "lost")
    if any(t.grid_index is not None for t in trials):
        assert all(n == 1 for n in kept.values()), f"a config ran twice: {kept}"
    return trials


@contextmanager
def stack_on(
    database_url: str, redis_server: RedisServer, logs: Path, **options: Any
) -> Iterator[Stack]:
    """A `Stack` (`options`: its workers and env) on an emptied Redis, stopped afterwards."""
    redis_server.client().flushall()  # no message of an earlier test's database may linger
    running = Stack(database_url, redis_server.url, logs, **options)
    try:
        yield running
    finally:
        running.stop()
