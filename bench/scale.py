"""Throughput with 1 and 2 workers, and per-trial overhead of the whole distributed path against
Optuna's own RDB path, on one PostgreSQL.

The real distributed path, started here on 127.0.0.1 on free ports (tests/servers.py) and
stopped by PID: a throw-away PostgreSQL, Redis, `hpsearch serve` and one or two
`hpsearch worker --concurrency 1` processes (this checkout's code). Studies are submitted with
`POST /api/v1/studies` and followed with `GET /api/v1/studies/{id}` until they end; times come
from the database (the study's `created_at`, its trials' `finished_at` and the engine's own
`train_seconds`), all on this host's clock.

1. Scale. A CPU-bound study: an MLP on `digits`, one epoch per trial, big enough (default
   hidden 1024-512, batch 16: about 0.2 s of training per trial here) that the training, not
   the service, is the work. Random search, parallelism = the number of workers, run once with
   one worker and once with two. Throughput = finished trials / (last trial's end - the study's
   creation), in trials/min; beside it, the worker time per trial not spent training
   ((wall time x workers - the sum of train_seconds) / trials). Target: two workers >= 1.8x
   one (on a machine with two cores).
2. Overhead per trial, with a trivial trial (softmax regression on iris, one epoch: a
   millisecond), one after the other (one worker, parallelism 1), for random and TPE search:
   - ours: (the study's wall time - the sum of its trials' `train_seconds`) / trials: the API's
     create and refill, the Celery message through Redis, the claim, heartbeat and curve
     writes, the trial's end and the coordinator's next proposal, each in PostgreSQL;
   - Optuna's: (wall time of `study.optimize` with RDB storage on a database of the same
     PostgreSQL - the time the same objective spends in our engine's `train`) / trials, as in
     bench/overhead.py, whose objective this reuses.
   Target: ours <= 0.5x Optuna's. Ours pays for separate processes and a broker hop that
   Optuna's in-process loop does not have; the ratio says what the distribution costs.

Every study is preceded by a short warm-up study (imports, the data set's first load in each
worker process). The machine may be shared: the load average is printed at start and at end.

    .venv/bin/python bench/scale.py [--trials 150] [--overhead-trials 300]
        [--hidden 1024,512] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import optuna  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench.api import load  # noqa: E402
from bench.overhead import STUDY as TRIVIAL  # noqa: E402
from bench.overhead import optunas  # noqa: E402
from tests.servers import ManagedProcess, PostgresServer, RedisServer, free_port  # noqa: E402

SCALE_TARGET = 1.8
OVERHEAD_TARGET = 0.5
WARMUP_TRIALS = 4
STUDY_TIMEOUT_S = 3600.0
POLL_S = 0.2


def cpu_bound(hidden: list[int], batch_size: int) -> dict:
    """The scale study: one epoch of an MLP on digits per trial, random search."""
    return {
        "name": "scale",
        "dataset": {"name": "digits"},
        "model": {"type": "mlp", "hidden": hidden, "activation": "relu"},
        "training": {"optimizer": "adam", "epochs": 1, "batch_size": batch_size},
        "space": {
            "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}
        },
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
    }


@dataclass(frozen=True)
class Run:
    """One study's figures, from the database."""

    trials: int
    wall_s: float  # the study's creation to its last trial's end
    trained_s: float  # the sum of its trials' train_seconds
    workers: int  # one trial at a time on each

    @property
    def per_minute(self) -> float:
        return self.trials / self.wall_s * 60

    @property
    def overhead_ms(self) -> float:
        """Worker time per trial not spent training (with one worker: wall - training)."""
        return (self.wall_s * self.workers - self.trained_s) / self.trials * 1e3


class Stack:
    """PostgreSQL's database, Redis, `hpsearch serve` and workers added one by one."""

    def __init__(self, stack: ExitStack, url: str, broker: str) -> None:
        self.stack, self.url = stack, url
        self.logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hpsearch-scale-")))
        # This checkout's code: hpsearch.* through the venv's editable install, tests/ by path.
        self.env = {"PYTHONPATH": str(ROOT), "HPSEARCH_DATABASE_URL": url}
        self.env["HPSEARCH_BROKER_URL"] = broker
        port = free_port()
        api = self._start("serve", "--host", "127.0.0.1", "--port", str(port), name="serve")
        self.base = f"http://127.0.0.1:{port}"
        api.wait_for_http(f"{self.base}/health")
        token = re.search(r"hps_[\w-]+", api.log_path.read_text())
        assert token is not None, api.describe()
        self.client = httpx.Client(
            base_url=self.base, timeout=30, headers={"Authorization": f"Bearer {token.group(0)}"}
        )
        stack.callback(self.client.close)
        self.engine = create_engine(url)
        stack.callback(self.engine.dispose)
        self.workers: list[ManagedProcess] = []

    def _start(self, *args: str, name: str) -> ManagedProcess:
        process = ManagedProcess(
            [sys.executable, "-c", "from hpsearch.cli.main import main; main()", *args],
            log_dir=self.logs,
            name=name,
            env=self.env,
            cwd=ROOT,
        )
        self.stack.callback(process.stop)
        return process

    def add_worker(self) -> None:
        n = len(self.workers) + 1
        worker = self._start("worker", "--concurrency", "1", "--name", f"w{n}@%h", name=f"w{n}")
        worker.wait_for_log("ready.", timeout=60)
        self.workers.append(worker)

    def run(self, definition: dict, workers: int) -> Run:
        """Submit a study, wait for its end, read its figures."""
        created = self.client.post("/api/v1/studies", json=definition)
        created.raise_for_status()
        study_id = created.json()["id"]
        deadline = time.monotonic() + STUDY_TIMEOUT_S
        while self.client.get(f"/api/v1/studies/{study_id}").json()["status"] == "running":
            if time.monotonic() > deadline:
                raise TimeoutError(f"study {study_id} still running after {STUDY_TIMEOUT_S} s")
            time.sleep(POLL_S)
        return self.figures(study_id, definition["budget"]["trials"], workers)

    def figures(self, study_id: int, budget: int, workers: int) -> Run:
        with self.engine.connect() as db:
            row = db.execute(
                text(
                    "SELECT count(*) FILTER (WHERE t.state = 'complete'),"
                    " extract(epoch FROM max(t.finished_at) - s.created_at),"
                    " sum((t.\"values\"->>'train_seconds')::float)"
                    " FROM trials t JOIN studies s ON s.id = t.study_id"
                    " WHERE s.id = :id GROUP BY s.created_at"
                ),
                {"id": study_id},
            ).one()
        complete, wall, trained = row
        if complete != budget:  # a failed or lost trial would skew every figure
            raise RuntimeError(f"study {study_id}: {complete} of {budget} trials complete")
        return Run(complete, float(wall), float(trained or 0.0), workers)

    def study(self, base: dict, kind: str, trials: int, parallelism: int) -> Run:
        """A warm-up study, then the measured one."""
        budget = {"trials": WARMUP_TRIALS, "parallelism": parallelism}
        self.run({**base, "strategy": {"type": kind, "seed": 1}, "budget": budget}, parallelism)
        budget = {"trials": trials, "parallelism": parallelism}
        strategy = {"type": kind, "seed": 0}
        return self.run({**base, "strategy": strategy, "budget": budget}, parallelism)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150, help="per scale study")
    parser.add_argument("--overhead-trials", type=int, default=300, help="per overhead study")
    parser.add_argument("--hidden", default="1024,512", help="the scale study's MLP")
    parser.add_argument("--batch-size", type=int, default=16, help="the scale study's batches")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scale_study = cpu_bound([int(h) for h in args.hidden.split(",")], args.batch_size)
    print(f"load average at start: {load()}")
    with ExitStack() as stack:
        postgres = stack.enter_context(PostgresServer())
        redis_server = stack.enter_context(RedisServer())
        theirs = {
            kind: optunas(postgres.create_database(f"optuna_{kind}"), kind, args.overhead_trials)
            for kind in ("random", "tpe")
        }
        ours = Stack(stack, postgres.create_database("distributed"), redis_server.url)
        ours.add_worker()
        overhead = {
            kind: ours.study(TRIVIAL, kind, args.overhead_trials, 1).overhead_ms
            for kind in ("random", "tpe")
        }
        scale = {1: ours.study(scale_study, "random", args.trials, 1)}
        ours.add_worker()
        scale[2] = ours.study(scale_study, "random", args.trials, 2)
    print(f"load average at end: {load()}\n")

    ratio = scale[2].per_minute / scale[1].per_minute
    print(f"scale: MLP {args.hidden} on digits, 1 epoch, batch {args.batch_size}, random search")
    print(
        f"{'workers':>7} {'trials':>6} {'wall s':>7} {'train s/trial':>13} "
        f"{'not training ms':>17} {'trials/min':>10}"
    )
    for workers, run in scale.items():
        print(
            f"{workers:>7} {run.trials:>6} {run.wall_s:7.1f} "
            f"{run.trained_s / run.trials:13.3f} {run.overhead_ms:17.1f} {run.per_minute:10.1f}"
        )
    met = verdict(ratio >= SCALE_TARGET)
    print(f"2 workers / 1: {ratio:.2f}x (target >= {SCALE_TARGET}x): {met}\n")

    print(f"overhead per trial, ms ({args.overhead_trials} trivial trials, one at a time)")
    print(f"{'sampler':<7} {'distributed':>11} {'optuna rdb':>10} {'ratio':>6}  target")
    for kind in ("random", "tpe"):
        share = overhead[kind] / theirs[kind]
        met = verdict(share <= OVERHEAD_TARGET)
        print(f"{kind:<7} {overhead[kind]:11.2f} {theirs[kind]:10.2f} {share:6.2f}  {met}")
    print(f"(target: distributed <= {OVERHEAD_TARGET}x Optuna's in-process RDB overhead)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
