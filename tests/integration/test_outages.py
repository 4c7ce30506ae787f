"""Broker and database outages on the real stack, with the production sweep settings: what an
operator sees is seconds of delay, not the minutes of `HPSEARCH_REQUEUE_AFTER_S`, and an API
that answers 503 rather than a 500 and a stack trace per request.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from hpsearch.db.settings import Settings
from tests.conftest import ROOT, tiny_study
from tests.integration.stack import (
    HPSEARCH,
    STUDY_TIMEOUT_S,
    Stack,
    assert_study_ended_whole,
    stack_on,
)
from tests.integration.test_faults import GRID_POINTS, grid_study, no_errors, wait_for_running
from tests.servers import ManagedProcess, PostgresServer, RedisServer

# Only what makes a trial lost during the outage is shortened (the production half-minute
# would make the outage and the test longer): every setting of what is under test, the sweep
# period and `HPSEARCH_REQUEUE_AFTER_S` above all, is the production default.
LOST_SOON = {"HPSEARCH_HEARTBEAT_S": "0.5", "HPSEARCH_LOST_AFTER_S": "5"}
# A bound on a mechanism (a reconnecting worker re-sends at once), generous for a loaded
# 2-core machine: without it the trials whose messages died waited the 300 s re-send period.
CLAIMED_WITHIN_S = 30.0


def test_queued_trials_run_within_seconds_of_a_redis_restart_without_persistence(
    fresh_database_url: str, redis_server: RedisServer, logs_dir: Path
) -> None:
    assert Settings().requeue_after_s == 300 and Settings().sweep_every_s == 5
    definition = grid_study()
    definition["budget"]["parallelism"] = 4  # two running, two queued on the broker
    with stack_on(fresh_database_url, redis_server, logs_dir, env=LOST_SOON) as stack:
        study_id = stack.submit(definition)
        victim = wait_for_running(stack, study_id, count=2, steps=1)[0]
        kill_trial_process(stack, victim.worker)  # found lost during the outage
        with redis_server.down():  # in-memory: the queued messages die with it
            # A second study, whose first trials the API cannot send.
            with stack.client() as client:
                client.timeout = httpx.Timeout(STUDY_TIMEOUT_S)  # it tries for a few seconds
                created = client.post("/api/v1/studies", json=tiny_study(name="in-the-outage"))
            assert created.status_code == 201, created.text
            wait_for_retry_of(stack, victim.id)
        back = datetime.now(UTC)
        studies = [study_id, int(created.json()["id"])]
        queued = queued_trials(stack, studies)
        assert len(queued) >= 5, "the outage left fewer queued trials than it should"

        trials = assert_study_ended_whole(stack, study_id, status="complete", finished=GRID_POINTS)
        trials += assert_study_ended_whole(stack, studies[1], status="complete", finished=4)
        started = dict(stack.sql("SELECT id, started_at FROM trials"))
        delays = {t: (started[t] - back).total_seconds() for t in queued}
        print(f"\nclaimed after Redis was back (s): {sorted(round(d, 1) for d in delays.values())}")
        assert max(delays.values()) < CLAIMED_WITHIN_S, (delays, stack.describe())
        no_errors(trials)
        # The restart is an event the workers wait out, not an error. The process killed on
        # purpose is one, and so is its replacement, which Celery's pool started while the
        # consumer was reconnecting and killed for not answering in time.
        logs = "\n".join(w.log_tail(100_000) for w in stack.started)
        killed = ("SIGKILL", "WorkerLostError", "UP message")
        errors = [
            line
            for line in logs.splitlines()
            if "ERROR/" in line and not any(reason in line for reason in killed)
        ]
        assert not errors and "PendingDeprecationWarning" not in logs, errors


def kill_trial_process(stack: Stack, worker: str | None) -> None:
    """SIGKILL the pool process running a trial (`worker` names it: `name:pid`)."""
    pid = int(worker.rsplit(":", 1)[1])  # type: ignore[union-attr]
    # Only ever a process of ours: a Celery pool child of one of our workers.
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent in {w.pid for w in stack.workers}, f"pid {pid} is not our pool's"
    os.kill(pid, signal.SIGKILL)


def wait_for_retry_of(stack: Stack, trial_id: int) -> None:
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while not stack.sql("SELECT id FROM trials WHERE retry_of = :id", id=trial_id):
        assert time.monotonic() < deadline, f"trial {trial_id} never lost:\n{stack.describe()}"
        time.sleep(0.2)


def queued_trials(stack: Stack, study_ids: list[int]) -> list[int]:
    rows = stack.sql(
        "SELECT id FROM trials WHERE study_id = ANY(:ids) AND state = 'queued'", ids=study_ids
    )
    return [trial_id for (trial_id,) in rows]


# Long enough for many polls each and for the watch's client to give up its own retries (3,
# each after the 503's Retry-After of 5 s) and say so, short enough for the CI: the log's bound
# does not depend on it, as the API logs an outage when it begins and when it ends.
POSTGRES_DOWN_S = 20.0
POLL_EVERY_S = 0.5
# uvicorn's one access line per request, e.g. `INFO:  127.0.0.1:5 - "GET /x HTTP/1.1" 503`.
ACCESS_LINE = re.compile(r'"[A-Z]+ \S+ HTTP/[\d.]+" \d{3}')


@dataclass(frozen=True)
class Answer:
    phase: str  # "down" while PostgreSQL was stopped, else "up"
    status: int
    retry_after: str | None
    code: str | None  # the error shape's code


def test_the_api_answers_503_while_postgres_is_down_and_logs_the_outage_once(
    fresh_database_url: str,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    logs_dir: Path,
) -> None:
    with stack_on(fresh_database_url, redis_server, logs_dir, workers=0) as stack:
        study_id = stack.submit(tiny_study())
        # What the dashboard and `hpsearch status --watch` poll, each through the auth
        # dependency, which reads the token from the database first.
        paths = ["/api/v1/studies", f"/api/v1/studies/{study_id}"]
        paths.append(f"/api/v1/studies/{study_id}/trials")
        watch = ManagedProcess(
            [*HPSEARCH, "status", str(study_id), "--watch", "--url", stack.base],
            log_dir=logs_dir,
            name="watch",
            env={"HPSEARCH_TOKEN": stack.token, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        )
        with watch:
            stack.api.wait_for_log(f"GET /api/v1/studies/{study_id} HTTP")  # the watch is on
            log_before = stack.api.log_path.stat().st_size
            answers = outage_polled(stack, paths, postgres_server)
            # The study runs on (here: waits for a worker), so the watch must wait it out.
            assert watch.is_running(), watch.describe()
            assert "the database cannot be reached now" in watch.log_tail(), watch.describe()
        log = stack.api.log_path.read_text()[log_before:]

    down = [a for a in answers if a.phase == "down"]
    assert len(down) >= len(paths) * POSTGRES_DOWN_S / POLL_EVERY_S / 2, "too few polls"
    assert {(a.status, a.retry_after, a.code) for a in down} == {(503, "5", "unavailable")}
    print(f"\n{len(down)} polls answered 503 while PostgreSQL was down")
    # Once it is back, every poller is answered again: the pool recovered by itself.
    assert all(a.status == 200 for a in answers[-len(paths) :]), answers[-len(paths) :]
    lines = [line for line in log.splitlines() if line.strip() and not ACCESS_LINE.search(line)]
    print(f"API log: {len(lines)} lines besides one access line per request:", *lines, sep="\n")
    assert len(lines) < 20 and "Traceback" not in log, lines
    assert any("database unreachable" in line for line in lines)
    assert any("database reachable again" in line for line in lines)


def outage_polled(stack: Stack, paths: list[str], postgres_server: PostgresServer) -> list[Answer]:
    """Every answer to pollers of `paths`, from before PostgreSQL stops until each poller is
    answered again after it is back."""
    phase = ["up"]
    with polling(stack, paths, phase) as answers:
        with postgres_server.down():
            phase[0] = "down"
            time.sleep(POSTGRES_DOWN_S)
        phase[0] = "up"
        wait_for_answers(answers, len(paths))
    return answers


@contextmanager
def polling(stack: Stack, paths: list[str], phase: list[str]) -> Iterator[list[Answer]]:
    """One poller per path, each asking every `POLL_EVERY_S` until the block ends."""
    answers: list[Answer] = []
    done = threading.Event()

    def poll(path: str) -> None:
        with stack.client() as client:
            while not done.is_set():
                now = phase[0]
                response = client.get(path)
                code = response.json().get("error", {}).get("code") if response.is_error else None
                if phase[0] == now:  # not a poll that straddled a change of phase
                    answers.append(
                        Answer(now, response.status_code, response.headers.get("retry-after"), code)
                    )
                done.wait(POLL_EVERY_S)

    pollers = [threading.Thread(target=poll, args=(path,)) for path in paths]
    for poller in pollers:
        poller.start()
    try:
        yield answers
    finally:
        done.set()
        for poller in pollers:
            poller.join()


def wait_for_answers(answers: list[Answer], count: int) -> None:
    """Until the last `count` answers are all successes (each poller answered again)."""
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while not all(a.status == 200 for a in answers[-count:]) or answers[-1].phase != "up":
        assert time.monotonic() < deadline, answers[-count:]
        time.sleep(0.2)
