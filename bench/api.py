"""Polling latency of the REST API on a 10,000-trial study in PostgreSQL, 20 pollers at once.

A throw-away PostgreSQL cluster (tests/servers.py) gets one study with N finished trials (params,
values and a few per-epoch metric rows each, bulk-inserted), then a real `hpsearch serve`
(uvicorn, this checkout's code) is started on 127.0.0.1 against it. Each scenario is then run
by P concurrent pollers, in two modes:

- interval: what a dashboard does. Each poller polls at a fixed rate, its period drawn once
  from [0.5, 1.0] s, starting at a random phase so that the pollers do not move in lockstep.
  This is the latency a user sees; the target is judged on it.
- closed loop: each poller sends its next request as soon as the last one answered (no think
  time). Latency there is just concurrency / throughput, so the figure that matters is req/s:
  the server's capacity for this request.

Scenarios: (0) GET /health, the floor (uvicorn, FastAPI and the client; no token, no database);
(a) GET /studies/{id}; (b) the same with If-None-Match of its current ETag (304);
(c) GET /studies/{id}/trials?after=<latest cursor> (an empty page: the steady state of an
incremental poll); (d) the same with If-None-Match (304). Each poller has its own token (one
viewer per poller, as with real users), so the per-token rate limiter never applies; any
answer other than the expected status (a 429 included) counts as an error. Every scenario is
warmed up, closed loop, before it is measured. Target: p99 < 25 ms for (b), (c) and (d).

Besides latency, each row shows per request the CPU time of the API server and of PostgreSQL,
and their time runnable but waiting for a core: on a shared machine that last figure says how
much of the latency other jobs added, and the CPU figures where the rest goes.

    .venv/bin/python bench/api.py [--trials 10000] [--pollers 20] [--seconds 30]
        [--closed-seconds 10] [--postgres-url URL]

Without --postgres-url a throw-away PostgreSQL cluster is started (tests/servers.py); with it,
the study is added to that (migrated or empty) database and PostgreSQL's own usage is not
shown. Clients and server share this machine's cores, so the closed-loop figures also pay for
the clients' CPU time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text  # noqa: E402

from hpsearch.db import accounts  # noqa: E402
from hpsearch.db.migrate import upgrade  # noqa: E402
from hpsearch.db.models import Role, Trial, TrialMetric, TrialState  # noqa: E402
from hpsearch.db.session import get_engine, session_scope  # noqa: E402
from hpsearch.search import coordinator  # noqa: E402
from hpsearch.search.definition import StudyDefinition  # noqa: E402
from tests.servers import ManagedProcess, PostgresServer, free_port  # noqa: E402

TARGET_P99_MS = 25.0
PERIOD_S = (0.5, 1.0)
EPOCHS = 5  # metric rows per trial: enough for the table to have a realistic size
WARMUP_S = 2.0
STUDY = {
    "name": "api-bench",
    "dataset": {"name": "digits"},
    "model": {"type": "mlp", "hidden": [64]},
    "training": {"loss": "cross_entropy", "optimizer": "adam", "epochs": EPOCHS},
    "space": {
        "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "training.batch_size": {"type": "int", "low": 16, "high": 256, "log": True},
        "model.hidden": {"type": "categorical", "choices": [[32], [64], [64, 64], [128, 64]]},
    },
    "strategy": {"type": "tpe", "seed": 0},
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
}


@dataclass(frozen=True)
class Scenario:
    """One kind of poll: a path, whether it sends the ETag it holds, and the answer expected."""

    label: str
    path: str
    etag: str | None
    expect: int
    judged: bool  # whether the target applies to it


@dataclass
class Sample:
    """What one phase measured: latencies in ms of the expected answers, the rest, and what
    the API server and PostgreSQL spent meanwhile (None: not measured)."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)  # status -> count (0: no answer)
    seconds: float = 0.0
    server: Usage | None = None
    postgres: Usage | None = None

    def add(self, other: Sample) -> None:
        """Merge another poller's latencies and errors into this one."""
        self.latencies.extend(other.latencies)
        for status, count in other.errors.items():
            self.errors[status] = self.errors.get(status, 0) + count


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in [0, 100])."""
    if not sorted_ms:
        return float("nan")
    rank = max(1, -(-len(sorted_ms) * q // 100))  # ceil without floats going astray
    return sorted_ms[int(rank) - 1]


@dataclass
class Usage:
    """Nanoseconds some threads spent running on a CPU, and runnable but waiting for one."""

    cpu: int = 0
    wait: int = 0

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.cpu - other.cpu, self.wait - other.wait)


def threads_of(pid: int) -> dict[int, Usage]:
    """Usage of each live thread of `pid`, by thread id (the kernel's schedstat)."""
    found = {}
    with contextlib.suppress(OSError):  # the process ended
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                cpu, wait, _ = (task / "schedstat").read_text().split()
            except (OSError, ValueError):
                continue  # ended meanwhile
            found[int(task.name)] = Usage(int(cpu), int(wait))
    return found


def children_of(pid: int) -> list[int]:
    """The live children of `pid` (PostgreSQL: its backends and helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Meter:
    """What the API server's threads and the PostgreSQL cluster's processes use during a
    phase. Sampled every SAMPLE_S, since a thread's figures vanish when it ends (anyio's idle
    workers do, PostgreSQL's backends may): each sample adds every thread's growth since the
    last one, so a thread that ends loses only what it used after the last sample."""

    SAMPLE_S = 0.2

    def __init__(self, server: int, postgres: int | None) -> None:
        self.server, self.postgres = server, postgres
        self.used = {"api": Usage(), "postgres": Usage()}
        self.last: dict[str, dict[int, Usage]] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _snapshot(self) -> dict[str, dict[int, Usage]]:
        snapshot = {"api": threads_of(self.server)}
        if self.postgres is not None:
            snapshot["postgres"] = {}
            for pid in [self.postgres, *children_of(self.postgres)]:
                snapshot["postgres"].update(threads_of(pid))
        return snapshot

    def _add(self, snapshot: dict[str, dict[int, Usage]]) -> None:
        for group, threads in snapshot.items():
            before = self.last.get(group, {})
            for tid, now in threads.items():
                grown = now - before.get(tid, Usage())  # a new thread grew from nothing
                self.used[group].cpu += grown.cpu
                self.used[group].wait += grown.wait
        self.last = snapshot

    def _run(self) -> None:
        while not self.done.wait(self.SAMPLE_S):
            self._add(self._snapshot())

    def __enter__(self) -> Meter:
        self.last = self._snapshot()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self._add(self._snapshot())


def fill(url: str, trials: int, pollers: int) -> tuple[int, list[str]]:
    """A study with `trials` finished trials, and one viewer token per poller."""
    upgrade(url)
    definition = StudyDefinition.model_validate(
        {**STUDY, "budget": {"trials": trials, "parallelism": 8}}
    )
    rng = random.Random(0)
    run = f"bench-{time.time_ns()}"  # names free even in a --postgres-url database used before
    with session_scope(url) as session:
        team = accounts.create_team(session, run)
        tokens = []
        for i in range(pollers):
            user = accounts.create_user(session, f"{run}-poller-{i:02d}")
            accounts.set_role(session, user.id, team.id, Role.VIEWER)
            tokens.append(accounts.issue_token(session, user.id, "bench", None)[1])
        # Left running, as the studies dashboards watch are; nothing is dispatched, so its
        # trials stay as inserted and every poll sees the same answer.
        study = coordinator.create_study(session, team_id=team.id, definition=definition)
        study_id = study.id
        start = study.created_at
        rows = []
        for number in range(trials):
            state = rng.choices(
                [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED], [90, 8, 2]
            )[0]
            accuracy = rng.uniform(0.5, 0.99)
            values = (
                None
                if state == TrialState.FAILED
                else {"val_accuracy": accuracy, "val_loss": 1 - accuracy, "train_seconds": 1.2}
            )
            queued = start + timedelta(seconds=number)
            rows.append(
                {
                    "study_id": study_id,
                    "number": number,
                    "params": {
                        "training.learning_rate": 10 ** rng.uniform(-4, 0),
                        "training.batch_size": rng.randint(16, 256),
                        "model.hidden": rng.choice([[32], [64], [64, 64], [128, 64]]),
                    },
                    "state": state,
                    "reason": "diverged" if state == TrialState.FAILED else None,
                    "values": values,
                    "value": accuracy if state == TrialState.COMPLETE else None,
                    "worker": f"worker-{number % 8}",
                    "queued_at": queued,
                    "started_at": queued + timedelta(seconds=1),
                    "finished_at": queued + timedelta(seconds=8),
                }
            )
        session.execute(insert(Trial), rows)
        ids = session.scalars(select(Trial.id).where(Trial.study_id == study_id)).all()
        curve = [
            {"trial_id": i, "step": step, "metrics": {"val_loss": 1.0 / step, "val_accuracy": 0.9}}
            for i in ids
            for step in range(1, EPOCHS + 1)
        ]
        session.execute(insert(TrialMetric), curve)
    # Statistics and the visibility map as autovacuum would have them on a live server by now;
    # right after a bulk insert the planner knows nothing of these tables.
    engine = get_engine(url)
    refresh = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(refresh))
    return study_id, tokens


class Connection:
    """One keep-alive HTTP/1.1 connection (the stdlib's: the lightest client there is, since
    clients and server share the cores)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}"}
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str, etag: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """GET `path` (with If-None-Match: `etag`): status, headers (lower-case names) and
        body; status 0 when the connection failed."""
        headers = self.headers if etag is None else {**self.headers, "If-None-Match": etag}
        try:
            self.http.request("GET", path, headers=headers)
            response = self.http.getresponse()
            headers = {name.lower(): value for name, value in response.getheaders()}
            return response.status, headers, response.read()
        except (OSError, http.client.HTTPException):
            self.http.close()  # reconnect on the next request
            return 0, {}, b""


def poll(
    connection: Connection,
    scenario: Scenario,
    until: float,
    period: float | None,
    phase: float,
    sample: Sample,
) -> None:
    """Poll until `until` (perf_counter): every `period` s from `phase`, or back to back."""
    due = time.perf_counter() + phase
    while True:
        if period is not None:
            # Fixed rate, like setInterval: a slow answer does not push the next poll back,
            # so a stall shows up in the latencies instead of hiding in fewer requests.
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            due += period
        started = time.perf_counter()
        if started >= until:
            return
        status, _, _ = connection.get(scenario.path, scenario.etag)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        if status == scenario.expect:
            sample.latencies.append(elapsed_ms)
        else:
            sample.errors[status] = sample.errors.get(status, 0) + 1


def run_phase(
    connections: list[Connection],
    scenario: Scenario,
    seconds: float,
    interval: bool,
    pids: tuple[int, int | None] | None = None,
) -> Sample:
    """All pollers on one scenario for `seconds`; their samples merged, and what the server
    (and PostgreSQL) of `pids` used meanwhile."""
    rng = random.Random(1)
    samples = [Sample() for _ in connections]
    with ExitStack() as stack:
        meter = stack.enter_context(Meter(*pids)) if pids else None
        started = time.perf_counter()
        until = started + seconds
        threads = []
        for connection, sample in zip(connections, samples, strict=True):
            period = rng.uniform(*PERIOD_S) if interval else None
            phase = rng.uniform(0, period) if period else 0.0
            thread = threading.Thread(
                target=poll, args=(connection, scenario, until, period, phase, sample), daemon=True
            )
            threads.append(thread)
            thread.start()
        for thread in threads:
            thread.join()
        merged = Sample(seconds=time.perf_counter() - started)
    if meter is not None:
        merged.server = meter.used["api"]
        merged.postgres = meter.used["postgres"] if pids and pids[1] else None
    for sample in samples:
        merged.add(sample)
    return merged


def scenarios(connection: Connection, study_id: int) -> list[Scenario]:
    """The polls, with the ETags and the cursor a dashboard would hold by now."""
    study_path = f"/api/v1/studies/{study_id}"
    status, headers, _ = connection.get(study_path)
    if status != 200:
        raise RuntimeError(f"GET {study_path} answered {status}")
    cursor = latest_cursor(connection, study_id)
    trials_path = f"{study_path}/trials?after={cursor}&limit=200"
    status, trial_headers, _ = connection.get(trials_path)
    if status != 200:
        raise RuntimeError(f"GET {trials_path} answered {status}")
    return [
        # The floor: uvicorn, FastAPI and the client, with no token to check and no database.
        Scenario("(0) GET /health", "/health", None, 200, False),
        Scenario("(a) GET study", study_path, None, 200, False),
        Scenario("(b) GET study, 304", study_path, headers["etag"], 304, True),
        Scenario("(c) trials?after=latest", trials_path, None, 200, True),
        Scenario("(d) trials?after=, 304", trials_path, trial_headers["etag"], 304, True),
    ]


def latest_cursor(connection: Connection, study_id: int) -> int:
    """Page through all trials as a dashboard's first load does; the last cursor it gets."""
    cursor, pages = -1, 0  # trials are numbered from 0
    started = time.perf_counter()
    while True:
        path = f"/api/v1/studies/{study_id}/trials?after={cursor}&limit=1000"
        status, _, body = connection.get(path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        page = json.loads(body)
        if not page["data"]:
            break
        cursor, pages = page["next_cursor"], pages + 1
    print(
        f"first load: {pages} pages of up to 1000 trials in "
        f"{time.perf_counter() - started:.2f} s; latest cursor {cursor}"
    )
    return cursor


def serve(stack: ExitStack, url: str) -> tuple[int, int]:
    """Start `hpsearch serve` from this checkout on a free port; its port and pid once it
    answers."""
    port = free_port()
    logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hpsearch-bench-")))
    server = ManagedProcess(
        [
            sys.executable,
            "-c",
            "from hpsearch.cli.main import main; main()",
            "serve",
            "--port",
            str(port),
        ],
        log_dir=logs,
        name="hpsearch-serve",
        # This checkout's code: hpsearch.* through the venv's editable install, tests/ by path.
        env={"PYTHONPATH": str(ROOT), "HPSEARCH_DATABASE_URL": url},
        cwd=ROOT,
    )
    stack.callback(server.stop)
    server.wait_for_http(f"http://127.0.0.1:{port}/health")
    return port, server.pid


def report(rows: list[tuple[Scenario, str, Sample]]) -> None:
    """The table: one row per scenario and mode."""
    print(
        f"\n{'':<24} {'':<8} {'':>8} {'':>7} {'':>7} {'':>7} {'':>7} {'':>6} "
        f"{'--- ms per request ---':^31}\n"
        f"{'scenario':<24} {'mode':<8} {'requests':>8} {'req/s':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'errors':>6} {'api cpu':>7} {'wait':>7} "
        f"{'pg cpu':>7} {'wait':>7}"
    )
    for scenario, mode, sample in rows:
        ms = sorted(sample.latencies)
        errors = sum(sample.errors.values())
        count = max(len(ms) + errors, 1)
        per_request = [
            f"{getattr(used, kind) / count / 1e6:>7.2f}" if used else f"{'-':>7}"
            for used in (sample.server, sample.postgres)
            for kind in ("cpu", "wait")
        ]
        print(
            f"{scenario.label:<24} {mode:<8} {len(ms):>8} {len(ms) / sample.seconds:>7.1f} "
            f"{percentile(ms, 50):>7.2f} {percentile(ms, 99):>7.2f} {max(ms, default=0):>7.2f} "
            f"{errors:>6} {' '.join(per_request)}{'  ' + str(sample.errors) if errors else ''}"
        )


def load() -> str:
    """The 1/5/15-minute load averages, against the number of cores."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--pollers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="per scenario, interval")
    parser.add_argument("--closed-seconds", type=float, default=10.0, help="per scenario")
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args()
    # A run takes minutes: show each line as it comes even when the output goes to a file.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with ExitStack() as stack:
        url, postgres_pid = args.postgres_url, None
        if url is None:
            postgres = stack.enter_context(PostgresServer())
            url, postgres_pid = postgres.create_database("api_bench"), postgres.pid
        started = time.perf_counter()
        study_id, tokens = fill(url, args.trials, args.pollers)
        print(
            f"study {study_id}: {args.trials} finished trials, {args.trials * EPOCHS} metric "
            f"rows, inserted in {time.perf_counter() - started:.1f} s"
        )
        port, server_pid = serve(stack, url)
        pids = (server_pid, postgres_pid)
        connections = [Connection(port, token) for token in tokens]
        polls = scenarios(connections[0], study_id)
        print(
            f"{args.pollers} pollers on 127.0.0.1:{port}, one token (viewer) each, so the "
            f"rate limiter (per token) never applies; keep-alive connections.\n"
            f"interval: each poller every U{PERIOD_S} s (drawn once) from a random phase, "
            f"{args.seconds:.0f} s per scenario; closed loop: no think time, "
            f"{args.closed_seconds:.0f} s per scenario; {WARMUP_S:.0f} s warm-up each.\n"
            f"ms per request: CPU time of the API server (all threads) and of PostgreSQL (all "
            f"processes) over the phase, and their time runnable but waiting for a core (what "
            f"other jobs on this machine add), / requests. Load average at start: {load()}"
        )
        rows: list[tuple[Scenario, str, Sample]] = []
        for scenario in polls:
            run_phase(connections, scenario, WARMUP_S, interval=False)
            for mode, seconds in (("interval", args.seconds), ("closed", args.closed_seconds)):
                sample = run_phase(connections, scenario, seconds, mode == "interval", pids)
                rows.append((scenario, mode, sample))
        report(rows)
        # Other jobs on a shared machine inflate every figure; this says by how much it was busy.
        print(f"load average at end: {load()}")
    judged = [
        (scenario, percentile(sorted(sample.latencies), 99))
        for scenario, mode, sample in rows
        if scenario.judged and mode == "interval"
    ]
    worst = max(judged, key=lambda pair: pair[1])
    verdict = "met" if worst[1] < TARGET_P99_MS else "NOT met"
    print(
        f"\ntarget: p99 < {TARGET_P99_MS:.0f} ms for the 304 and incremental polls (b, c, d) "
        f"at interval polling: {verdict} (worst: {worst[0].label}, p99 {worst[1]:.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
