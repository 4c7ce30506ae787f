"""Agents on a real API (PostgreSQL, Redis, no Celery worker): trials leased over REST, run by
`hpsearch agent` processes with the user's own function, reported on, and ended; a killed
agent's trial found lost and run again, the budget exact."""

from __future__ import annotations

import io
import math
import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from hpsearch.client import ApiError
from tests.api.conftest import bearer, token_maker, wait_done
from tests.conftest import ROOT, tiny_study
from tests.integration.stack import (
    HPSEARCH,
    STUDY_TIMEOUT_S,
    Stack,
    assert_study_ended_whole,
    stack_on,
)
from tests.servers import ManagedProcess, RedisServer

# The user's training code: a function of the trial's full config, sleeping per step so that
# an agent can be killed mid-trial.
USER_CODE = """
import threading
import time

def train(config, context):
    rate = config["training"]["learning_rate"]
    accuracy = 1.0 - abs(rate - 0.05)
    for step in range(1, 6):
        time.sleep(0.3)
        if context.report(step, {"val_accuracy": accuracy - 0.1 / step}):
            break
    return {"val_accuracy": accuracy}
"""

LEASE_S = "3"


@pytest.fixture
def stack(fresh_database_url: str, redis_server: RedisServer, logs_dir: Path) -> Iterator[Stack]:
    """The API alone: no worker consumes the broker's queues, so only agents run trials."""
    env = {"HPSEARCH_LOST_AFTER_S": LEASE_S, "HPSEARCH_HEARTBEAT_S": "0.5"}
    with stack_on(fresh_database_url, redis_server, logs_dir, workers=0, env=env) as running:
        yield running


def start_agent(
    stack: Stack, study_id: int, folder: Path, name: str, code: str = USER_CODE
) -> ManagedProcess:
    (folder / "user_training.py").write_text(code)
    env = {**stack.env, "HPSEARCH_URL": stack.base, "HPSEARCH_TOKEN": stack.token}
    env["PYTHONPATH"] = str(ROOT)  # the user's module comes from the current folder
    return ManagedProcess(
        [*HPSEARCH, "agent", str(study_id), "--trainer", "user_training:train"],
        log_dir=stack.logs,
        name=name,
        env=env,
        cwd=folder,
    )


def agent_trials(process: ManagedProcess) -> Counter[int]:
    """The trial numbers an agent's log says it started, with how often."""
    return Counter(int(n) for n in re.findall(r"trial (\d+): running", process.log_tail(10_000)))


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def reported_trial(stack: Stack, study_id: int, agent: ManagedProcess) -> int:
    """The number of the trial `agent` runs, once it has reported (its steps are stored)."""
    reported = (
        "SELECT t.number FROM trials t WHERE t.study_id = :id AND t.worker LIKE :who"
        " AND t.state = 'running' AND EXISTS (SELECT 1 FROM trial_metrics m"
        " WHERE m.trial_id = t.id)"
    )
    who = f"agent:%:{agent.pid}"
    wait_until(lambda: stack.sql(reported, id=study_id, who=who), agent.describe())
    return int(stack.sql(reported, id=study_id, who=who)[0][0])


def test_two_agents_one_killed_mid_trial_end_the_budget_exactly(
    stack: Stack, tmp_path: Path
) -> None:
    study_id = stack.submit(tiny_study(budget={"trials": 6, "parallelism": 2}))
    first = start_agent(stack, study_id, tmp_path, "agent1")
    # The victim's trial has reported (its steps are stored) when it is killed.
    killed = reported_trial(stack, study_id, first)
    second = start_agent(stack, study_id, tmp_path, "agent2")
    first.kill()

    trials = assert_study_ended_whole(stack, study_id, status="complete", finished=6)
    second.wait()
    by_number = {t.number: t for t in trials}
    assert by_number[killed].state == "failed" and by_number[killed].reason == "lost"
    (retry,) = [t for t in trials if t.retry_of == by_number[killed].id]
    assert retry.params == by_number[killed].params and retry.state == "complete"
    assert (retry.worker or "").endswith(f":{second.pid}")
    # Every trial ran on an agent, and no number ran on two: per the database and the logs.
    assert all(t.worker and t.worker.startswith("agent:") for t in trials)
    ran = agent_trials(first) + agent_trials(second)
    assert ran == Counter({t.number: 1 for t in trials}), (ran, second.describe())
    assert sum(t.state == "complete" and t.steps == 5 for t in trials) == 6


def member_client(stack: Stack, user: str, team: str, role: str = "member") -> httpx.Client:
    token = token_maker(stack.database_url)(user, team, role)
    return httpx.Client(base_url=stack.base, timeout=10, headers=bearer(token))


def test_a_lease_reports_prunes_finishes_and_is_the_callers_alone(stack: Stack) -> None:
    pruned_study = tiny_study(
        budget={"trials": 3, "parallelism": 1},
        pruner={"type": "median", "warmup_epochs": 0, "min_trials": 1},
    )
    study_id = stack.submit(pruned_study)
    base = f"/api/v1/studies/{study_id}"
    with stack.client() as admin:
        assert admin.get(base).json()["waiting"] == "no worker offers trainer 'numpy'"
        lease = admin.post(f"{base}/lease", json={"agent": "laptop:1"})
        assert lease.status_code == 200, lease.text
        trial = lease.json()
        assert trial["number"] == 0 and trial["config"]["training"]["learning_rate"] > 0
        assert admin.get(base).json()["waiting"] is None  # an agent runs its trial
        # Nothing else is queued (parallelism 1): no second lease now.
        assert admin.post(f"{base}/lease", json={"agent": "laptop:2"}).status_code == 204
        # Another agent's name cannot report on it, nor end it.
        steps = [{"step": s, "metrics": {"val_accuracy": 0.9}} for s in (1, 2, 3)]
        other = admin.post(f"{base}/trials/0/report", json={"agent": "laptop:2", "reports": steps})
        assert other.status_code == 409 and other.json()["error"]["field"] == "agent"
        answer = admin.post(f"{base}/trials/0/report", json={"agent": "laptop:1", "reports": steps})
        assert answer.json() == {"stop": False, "reason": None}
        # A NaN step is refused by name, not stored.
        nan = admin.post(
            f"{base}/trials/0/report",
            content=b'{"agent": "laptop:1", "reports": [{"step": 4, "metrics": {"loss": NaN}}]}',
            headers={"Content-Type": "application/json"},
        )
        assert nan.status_code == 422 and nan.json()["error"]["field"] == "reports.0.metrics.loss"
        end = {"agent": "laptop:1", "state": "complete", "values": {"val_accuracy": 0.9}}
        done = admin.post(f"{base}/trials/0/finish", json=end)
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "complete" and done.json()["value"] == 0.9
        again = admin.post(f"{base}/trials/0/finish", json=end)
        assert again.status_code == 409, again.text

        # The next trial falls behind the first's curve: the median pruner stops it.
        assert admin.post(f"{base}/lease", json={"agent": "laptop:1"}).json()["number"] == 1
        bad = [
            {"step": 1, "metrics": {"val_accuracy": 0.95}},
            {"step": 2, "metrics": {"val_accuracy": 0.1}},
        ]
        stop = admin.post(f"{base}/trials/1/report", json={"agent": "laptop:1", "reports": bad})
        assert stop.json() == {"stop": True, "reason": "pruned"}

        # Another team's member finds nothing; a viewer of the team may not lease.
        with member_client(stack, "bob", "beta") as bob:
            for path in ("lease", "trials/1/report"):
                refused = bob.post(f"{base}/{path}", json={"agent": "laptop:1"})
                assert refused.status_code == 404, refused.text
        with member_client(stack, "vic", "local", "viewer") as vic:
            assert vic.post(f"{base}/lease", json={"agent": "laptop:1"}).status_code == 403

        pruned = {"agent": "laptop:1", "state": "pruned", "reason": "pruned at step 2",
                  "values": {"val_accuracy": 0.1}}  # fmt: skip
        assert admin.post(f"{base}/trials/1/finish", json=pruned).json()["state"] == "pruned"
        assert admin.post(f"{base}/cancel").status_code == 200
        ended = admin.post(f"{base}/lease", json={"agent": "laptop:1"})
        assert ended.status_code == 409 and ended.json()["error"]["field"] == "status"
        curve = admin.get(f"{base}/trials/0").json()["curve"]
        assert [point["step"] for point in curve] == [1, 2, 3]


def test_an_agent_ends_its_trials_as_a_worker_would(stack: Stack) -> None:
    """`hpsearch.agent()` in this process: a complete trial, an exception with its traceback
    and a diverging step each end a trial as a worker's would."""
    from hpsearch import agent

    study_id = stack.submit(
        tiny_study(
            budget={"trials": 3, "parallelism": 1},
            strategy={"type": "grid"},
            space={"training.learning_rate": {"type": "categorical", "choices": [0.1, 0.2, 0.3]}},
        )
    )

    def train(config: dict, context: Any) -> dict:
        rate = config["training"]["learning_rate"]
        if rate == 0.2:
            raise ValueError(f"no good at {rate}")
        context.report(1, {"val_accuracy": 0.5})
        context.report(2, {"val_accuracy": math.nan if rate == 0.3 else 0.6})
        return {"val_accuracy": 0.6}

    ran = agent(study_id, train, url=stack.base, token=stack.token)
    assert ran == 3
    with stack.client() as client:
        trials = {
            t["params"]["training.learning_rate"]: t
            for t in client.get(f"/api/v1/studies/{study_id}/trials").json()["data"]
        }
        assert trials[0.1]["state"] == "complete" and trials[0.1]["value"] == 0.6
        assert trials[0.2]["reason"] == "error: ValueError: no good at 0.2"
        detail = client.get(f"/api/v1/studies/{study_id}/trials/{trials[0.2]['number']}").json()
        assert detail["traceback"].splitlines()[-1] == "ValueError: no good at 0.2"
        assert trials[0.3]["reason"] == "diverged at step 2 (val_accuracy nan)"
        assert client.get(f"/api/v1/studies/{study_id}").json()["status"] == "complete"


def test_an_agent_learns_through_its_reports_that_its_study_was_cancelled(
    stack: Stack,
) -> None:
    from hpsearch import agent

    study_id = stack.submit(tiny_study(budget={"trials": 2, "parallelism": 1}))
    started, steps = threading.Event(), []

    def train(config: dict, context: Any) -> dict:
        started.set()
        for step in range(1, 100_000):
            steps.append(step)
            time.sleep(0.05)
            if context.report(step, {"val_accuracy": 0.5}):
                return {"val_accuracy": 0.5}
        raise AssertionError("never told to stop")

    with ThreadPoolExecutor(1) as pool:
        ran = pool.submit(agent, study_id, train, url=stack.base, token=stack.token)
        assert started.wait(STUDY_TIMEOUT_S)
        with stack.client() as client:
            assert client.post(f"/api/v1/studies/{study_id}/cancel").status_code == 200
        assert ran.result(STUDY_TIMEOUT_S) == 1  # and then the study had ended
    with stack.client() as client:
        (trial,) = client.get(f"/api/v1/studies/{study_id}/trials").json()["data"][:1]
    assert trial["state"] == "failed" and trial["reason"] == "cancelled"
    assert steps[-1] < 100_000 - 1


def agent_study(**overrides: object) -> dict:
    """A study of trainer `fit`, which no worker offers: only an agent's own code runs it."""
    study: dict = {
        "name": "agent-only",
        "trainer": "fit",
        "runs_on": "agents",
        "config": {"width": 1.0},
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "strategy": {"type": "random", "seed": 3},
        "objective": {"metric": "loss", "direction": "minimize"},
        "budget": {"trials": 3, "parallelism": 1},
    }
    study.update(overrides)
    return study


def fit(config: dict, context: Any) -> dict:
    """The user's trainer `fit`: a function, declaring no schema."""
    loss = (config["x"] - 0.2) ** 2 * config["width"]
    context.report(1, {"loss": loss + 1.0})
    return {"loss": loss}


def test_an_agent_offers_its_trainer_to_its_team_alone(stack: Stack) -> None:
    from hpsearch import agent

    with stack.client() as admin:
        # Nobody ever offered `fit`: a study any process may run is refused, as a typo would be.
        refused = admin.post("/api/v1/studies", json=agent_study(runs_on="any"))
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "trainer"
        # One its agents alone run is made first, and waits for its first agent.
        study_id = stack.submit(agent_study())
        base = f"/api/v1/studies/{study_id}"
        assert admin.get(base).json()["waiting"] == "no agent offers trainer 'fit'"

        with ThreadPoolExecutor(1) as pool:
            ran = pool.submit(agent, study_id, fit, url=stack.base, token=stack.token)
            assert ran.result(STUDY_TIMEOUT_S) == 3
        assert admin.get(base).json()["status"] == "complete"
        listed = {t["name"]: t for t in admin.get("/api/v1/trainers").json()}
        assert listed["fit"]["version"] == "" and listed["fit"]["config_schema"] == {}
        # Offered now, for the team: a study any process may run names it freely.
        assert admin.post("/api/v1/studies", json=agent_study(runs_on="any")).status_code == 201
    with member_client(stack, "bob", "beta") as bob:
        # Another team knows nothing of it.
        assert "fit" not in {t["name"] for t in bob.get("/api/v1/trainers").json()}
        foreign = bob.post("/api/v1/studies", json=agent_study(runs_on="any"))
        assert foreign.status_code == 422 and foreign.json()["error"]["field"] == "trainer"


def test_a_live_agent_is_listed_on_the_trainers_page_and_serves_its_study(
    stack: Stack, tmp_path: Path
) -> None:
    study_id = stack.submit(tiny_study(budget={"trials": 50, "parallelism": 1}))
    base = f"/api/v1/studies/{study_id}"
    process = start_agent(stack, study_id, tmp_path, "agent1")
    with stack.client() as admin:

        def listed() -> list[str]:
            trainers = {t["name"]: t for t in admin.get("/api/v1/trainers").json()}
            return trainers["numpy"]["hosts"] if "numpy" in trainers else []

        wait_until(lambda: listed() == [socket.gethostname()], process.describe())
        assert admin.get(base).json()["waiting"] is None
        assert admin.post(f"{base}/cancel").status_code == 200
    process.wait()


def test_an_agents_trainer_reads_the_studys_uploads_once_as_a_worker_does(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from hpsearch import Client, agent
    from hpsearch.worker.runner import _dataset

    rng = np.random.default_rng(0)
    arrays = {"X": rng.normal(size=(200, 3)), "y": rng.integers(0, 2, size=200)}
    np.savez(tmp_path / "table.npz", **arrays)
    with Client(stack.base, stack.token) as client:
        ours = client.upload_dataset(
            tmp_path / "table.npz",
        )["id"]
    with member_client(stack, "bob", "beta") as bob, (tmp_path / "table.npz").open("rb") as f:
        theirs = bob.post("/api/v1/datasets", files={"file": ("t.npz", f)})
        theirs_id = theirs.json()["id"]
    study_id = stack.submit(tiny_study(budget={"trials": 2, "parallelism": 1}))
    fetched: list[tuple] = []
    fetch = Client.trial_dataset
    monkeypatch.setattr(
        Client, "trial_dataset", lambda self, *a: fetched.append(a) or fetch(self, *a)
    )
    read: list[bytes] = []

    def train(config: dict, context: Any) -> dict:
        read.extend(context.dataset(str(ours)).content for _ in range(2))
        # By name too, as the study file names uploads: the same dataset, its id given.
        named = context.dataset("table@1")
        assert (named.id, named.content) == (ours, read[-1])
        with pytest.raises(LookupError, match=f"no dataset {theirs_id} in this study's team"):
            context.dataset(str(theirs_id))
        return {"val_accuracy": 0.5}

    assert agent(study_id, train, url=stack.base, token=stack.token) == 2
    # Two trials read it twice each; it was fetched once (the other team's, refused, each time).
    assert len(read) == 4 and len({*read}) == 1
    assert [a[-1] for a in fetched].count(str(ours)) == 1
    # The same bytes, and arrays, as a worker's `context.dataset` gives.
    created_at = stack.sql("SELECT created_at FROM studies WHERE id = :id", id=study_id)[0][0]
    worker = _dataset(str(ours), study_id, created_at, stack.database_url)
    assert worker is not None and worker.content == read[0]
    with np.load(io.BytesIO(read[0]), allow_pickle=False) as loaded:
        assert set(loaded.files) == {"X", "y"}
        for name, array in arrays.items():
            np.testing.assert_array_equal(loaded[name], array)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_agent_gives_its_trial_back_at_once(
    stack: Stack, tmp_path: Path, stop: signal.Signals
) -> None:
    study_id = stack.submit(tiny_study(budget={"trials": 3, "parallelism": 1}))
    first = start_agent(stack, study_id, tmp_path, "agent1")
    number = reported_trial(stack, study_id, first)
    os.kill(first.pid, stop)
    assert first.wait() == 130, first.describe()
    assert f"hpsearch agent {study_id} --trainer user_training:train" in first.log_tail()
    # Queued again as it exits, its steps dropped: nothing waits for its lease to run out
    # (no other agent polls, nor any worker sweeps, to find it lost).
    (row,) = stack.sql(
        "SELECT t.state, t.worker, (SELECT count(*) FROM trial_metrics m WHERE m.trial_id = t.id)"
        " FROM trials t WHERE t.study_id = :id AND t.number = :number",
        id=study_id,
        number=number,
    )
    assert tuple(row) == ("queued", None, 0)

    second = start_agent(stack, study_id, tmp_path, "agent2")
    trials = assert_study_ended_whole(stack, study_id, status="complete", finished=3)
    second.wait()
    assert all(t.state == "complete" and t.retry_of is None for t in trials)
    assert agent_trials(second)[number] == 1


# The user's training code that never reports, sleeping for an hour: only an interruption
# stops it.
SILENT_CODE = """
import time

def train(config, context):
    print("training", flush=True)
    time.sleep(3600)
    return {"val_accuracy": 0.5}
"""


def test_an_agents_trainer_that_never_reports_is_stopped_when_its_study_is_cancelled(
    stack: Stack, tmp_path: Path
) -> None:
    study_id = stack.submit(tiny_study(budget={"trials": 2, "parallelism": 1}))
    process = start_agent(stack, study_id, tmp_path, "agent1", SILENT_CODE)
    process.wait_for_log("training")
    with stack.client() as client:
        assert client.post(f"/api/v1/studies/{study_id}/cancel").status_code == 200
    # Its heartbeat learns the study ended and interrupts the sleep: the agent ends its trial
    # and stops (the study has ended), well within the trainer's hour.
    assert process.wait() == 0, process.describe()
    with stack.client() as client:
        (trial,) = client.get(f"/api/v1/studies/{study_id}/trials").json()["data"]
    assert (trial["state"], trial["reason"]) == ("failed", "cancelled")
    assert "trial 0: failed (cancelled)" in process.log_tail()


def test_hpsearch_serve_leaves_agents_the_trials_its_pool_may_not_or_cannot_run(
    tmp_path: Path,
) -> None:
    """`hpsearch serve` with no broker runs trials on its local pool: not those of a study
    run by agents alone, nor of a trainer only agents have; a study run by workers alone is
    never leased."""
    from hpsearch import agent
    from tests.browser.support import serve

    process, base, token = serve(tmp_path, f"sqlite:///{tmp_path / 'hpsearch.db'}")
    try:
        with httpx.Client(base_url=base, timeout=10, headers=bearer(token)) as client:

            def submit(definition: dict) -> int:
                created = client.post("/api/v1/studies", json=definition)
                assert created.status_code == 201, created.text
                return int(created.json()["id"])

            def workers(study_id: int) -> set[str]:
                trials = client.get(f"/api/v1/studies/{study_id}/trials").json()["data"]
                assert all(t["state"] == "complete" for t in trials), trials
                return {t["worker"].split(":")[0] for t in trials}

            # `fit` offered by an agent (a function, named for its study) for the team.
            assert agent(submit(agent_study()), fit, url=base, token=token) == 3

            # Run by the pool, the first trials of the next two studies sent to it after its
            # own first ones, and before the later ones.
            pool_only = submit(tiny_study(runs_on="workers", budget={"trials": 4}))
            # The engine is installed here, but this study is for agents.
            numpy_study = submit(tiny_study(runs_on="agents", budget={"trials": 3}))
            # Anyone may run this one, but the pool has no `fit`.
            fit_study = submit(agent_study(runs_on="any"))
            refused = client.post(f"/api/v1/studies/{pool_only}/lease", json={"agent": "a:1"})
            assert refused.status_code == 409 and refused.json()["error"]["field"] == "runs_on"
            assert wait_done(client, pool_only)["status"] == "complete"  # type: ignore[arg-type]
            assert "agent" not in workers(pool_only)
            # The pool has taken every trial sent to it: the others wait for an agent.
            for study_id in (numpy_study, fit_study):
                trials = client.get(f"/api/v1/studies/{study_id}/trials").json()["data"]
                assert [t["state"] for t in trials] == ["queued"], trials
            assert agent(numpy_study, train_numpy_config, url=base, token=token) == 3
            assert agent(fit_study, fit, url=base, token=token) == 3
            assert workers(numpy_study) == workers(fit_study) == {"agent"}
    finally:
        process.stop()


def train_numpy_config(config: dict, context: Any) -> dict:
    """An agent's own training for a study of the built-in engine's config."""
    context.report(1, {"val_accuracy": config["training"]["learning_rate"]})
    return {"val_accuracy": config["training"]["learning_rate"]}


def test_a_report_sent_again_stores_its_steps_once(stack: Stack) -> None:
    """An agent re-sends a report whose answer it lost: PostgreSQL stores each step once."""
    study_id = stack.submit(tiny_study(budget={"trials": 1, "parallelism": 1}))
    base = f"/api/v1/studies/{study_id}"
    steps = [{"step": s, "metrics": {"val_accuracy": s / 10}} for s in (1, 2, 3)]
    with stack.client() as client:
        assert client.post(f"{base}/lease", json={"agent": "laptop:1"}).status_code == 200
        for reports in (steps[:2], steps[:2], steps):  # the first again, then one step more
            answer = client.post(
                f"{base}/trials/0/report", json={"agent": "laptop:1", "reports": reports}
            )
            assert answer.status_code == 200, answer.text
        end = {"agent": "laptop:1", "state": "complete", "values": {"val_accuracy": 0.3}}
        assert (
            client.post(f"{base}/trials/0/finish", json={**end, "reports": steps[2:]}).status_code
            == 200
        )
        curve = client.get(f"{base}/trials/0").json()["curve"]
    assert [(p["step"], p["val_accuracy"]) for p in curve] == [(1, 0.1), (2, 0.2), (3, 0.3)]


def test_an_agents_trainer_class_is_offered_with_its_schema_and_reads_uploads(
    stack: Stack, tmp_path: Path
) -> None:
    """A `Trainer` run by an agent (the ridge example) offers its version, schema and metrics:
    the team's later studies are checked against them; its `context.dataset` reads an upload."""
    import numpy as np
    from hpsearch_ridge import RidgeTrainer

    from hpsearch import Client, agent

    rng = np.random.default_rng(1)
    np.savez(tmp_path / "xy.npz", X=rng.normal(size=(120, 4)), y=rng.normal(size=120))
    with Client(stack.base, stack.token) as client:
        upload = str(client.upload_dataset(tmp_path / "xy.npz")["id"])
    ridge = {
        "name": "ridge-on-agents",
        "trainer": "ridge",
        "runs_on": "agents",
        "config": {"data": {"upload": upload}, "steps": 5},
        "space": {"alpha": {"type": "float", "low": 0.01, "high": 1.0, "log": True}},
        "objective": {"metric": "val_rmse", "direction": "minimize"},
        "budget": {"trials": 2, "parallelism": 1},
    }
    study_id = stack.submit(ridge)
    with pytest.raises(ApiError, match="trainer 'ridge' cannot run this study"):
        agent(stack.submit(agent_study()), RidgeTrainer, url=stack.base, token=stack.token)
    assert agent(study_id, RidgeTrainer, url=stack.base, token=stack.token) == 2
    with stack.client() as admin:
        trials = admin.get(f"/api/v1/studies/{study_id}/trials").json()["data"]
        assert [t["state"] for t in trials] == ["complete", "complete"], trials
        listed = {t["name"]: t for t in admin.get("/api/v1/trainers").json()}["ridge"]
        assert listed["version"] == RidgeTrainer.version
        assert "alpha" in {s["path"] for s in listed["settings"]}
        # Checked now against what the agent declared, as against a worker's offer.
        bad = admin.post("/api/v1/studies", json={**ridge, "config": {"alpha": -1.0}})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "config.alpha"
        unknown = admin.post(
            "/api/v1/studies",
            json={**ridge, "objective": {"metric": "auc", "direction": "maximize"}},
        )
        assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "objective"
