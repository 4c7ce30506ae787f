"""Broker and database outages on the real stack, with the production sweep settings: what an
operator sees is seconds of delay, not the minutes of `HPSEARCH_REQUEUE_AFTER_S`, and an API
that answers 503 rather than a 500 and a stack trace per request.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from db.settings import Settings
from tests.integration.stack import STUDY_TIMEOUT_S, Stack, assert_study_ended_whole, stack_on
from tests.integration.test_faults import GRID_POINTS, grid_study, no_errors, wait_for_running
from tests.servers import RedisServer

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
            wait_for_retry_of(stack, victim.id)
        back = datetime.now(UTC)
        queued = [row[0] for row in queued_trials(stack, study_id)]
        assert len(queued) >= 3, "the outage left fewer queued trials than it should"

        trials = assert_study_ended_whole(stack, study_id, status="complete", finished=GRID_POINTS)
        started = dict(
            stack.sql("SELECT id, started_at FROM trials WHERE study_id = :id", id=study_id)
        )
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


def queued_trials(stack: Stack, study_id: int) -> list[tuple[int]]:
    return stack.sql("SELECT id FROM trials WHERE study_id = :id AND state = 'queued'", id=study_id)
