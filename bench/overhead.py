"""Per-trial overhead of our coordinator and runner against Optuna's own RDB path.

Both sides run the same trivial trial (softmax regression on iris, one epoch, through our
engine) one after another for N trials, on the same database server: ours through
`coordinator.refill` + `run_trial` (ask, tell, claim, curve, finish: every SQL statement of a
real trial), Optuna's through `study.optimize` with its RDB storage. Overhead per trial is the
wall time minus the engine's own training time, divided by N. Target: ours <= 0.25x Optuna's.

    .venv/bin/python bench/overhead.py [--trials 1000] [--postgres-url URL]

Without --postgres-url a throw-away PostgreSQL cluster is started (tests/servers.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402

from hpsearch.db import queries  # noqa: E402
from hpsearch.db.migrate import upgrade  # noqa: E402
from hpsearch.db.session import session_scope  # noqa: E402
from hpsearch.search import coordinator  # noqa: E402
from hpsearch.search.definition import StudyDefinition  # noqa: E402
from hpsearch.worker.engine import load_splits, train  # noqa: E402
from hpsearch.worker.runner import run_trial  # noqa: E402

LOW, HIGH = 1e-4, 1.0
STUDY = {
    "name": "overhead",
    "dataset": {"name": "iris"},
    "model": {"type": "softmax"},
    "training": {"loss": "cross_entropy", "epochs": 1, "batch_size": None},
    "space": {"training.learning_rate": {"type": "float", "low": LOW, "high": HIGH, "log": True}},
    "objective": {"metric": "val_loss", "direction": "minimize"},
}


def ours(url: str, kind: str, trials: int) -> float:
    """Milliseconds of overhead per trial on our path."""
    upgrade(url)
    definition = StudyDefinition.model_validate(
        {**STUDY, "strategy": {"type": kind, "seed": 0}, "budget": {"trials": trials}}
    )
    with session_scope(url) as session:
        team = queries.ensure_team(session)
        study_id = coordinator.create_study(session, team_id=team, definition=definition).id
    queue: list[int] = []
    started = time.perf_counter()
    coordinator.refill(study_id, dispatch=queue.extend, url=url)
    while queue:
        queue.extend(run_trial(queue.pop(), url=url))
    wall = time.perf_counter() - started
    with session_scope(url) as session:
        trained = sum(t.values["train_seconds"] for t in queries.trials_of(session, study_id))
    return (wall - trained) / trials * 1e3


def optunas(url: str, kind: str, trials: int) -> float:
    """Milliseconds of overhead per trial on Optuna's RDB path."""
    definition = StudyDefinition.model_validate(
        {**STUDY, "strategy": {"type": "random"}, "budget": {"trials": trials}}
    )
    splits = load_splits(definition.dataset)
    trained = 0.0

    def objective(trial: optuna.Trial) -> float:
        nonlocal trained
        lr = trial.suggest_float("training.learning_rate", LOW, HIGH, log=True)
        result = train(definition.trial_config({"training.learning_rate": lr}), splits)
        trained += result.metrics["train_seconds"]
        return result.metrics["val_loss"]

    sampler = (optuna.samplers.TPESampler if kind == "tpe" else optuna.samplers.RandomSampler)(
        seed=0
    )
    study = optuna.create_study(storage=url, sampler=sampler, study_name=f"{kind}-{time.time()}")
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return (time.perf_counter() - started - trained) / trials * 1e3


def databases(stack: ExitStack, postgres_url: str | None) -> dict[str, Callable[[str], str]]:
    """Backend name -> a function giving a fresh database URL (SQLAlchemy) for a label."""
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    backends: dict[str, Callable[[str], str]] = {
        "sqlite": lambda label: f"sqlite:///{folder}/{label}.db"
    }
    if postgres_url is None:
        from tests.servers import PostgresServer

        server = stack.enter_context(PostgresServer())
        backends["postgresql"] = server.create_database
    else:
        backends["postgresql"] = lambda label: postgres_url
    return backends


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{'database':<11} {'sampler':<7} {'ours ms':>8} {'optuna ms':>10} {'ratio':>6}  target")
    worst = 0.0
    with ExitStack() as stack:
        for backend, fresh in databases(stack, args.postgres_url).items():
            for kind in ("random", "tpe"):
                mine = ours(fresh(f"ours_{kind}"), kind, args.trials)
                theirs = optunas(fresh(f"optuna_{kind}"), kind, args.trials)
                ratio = mine / theirs
                worst = max(worst, ratio)
                verdict = "met" if ratio <= 0.25 else "NOT met"
                print(f"{backend:<11} {kind:<7} {mine:8.2f} {theirs:10.2f} {ratio:6.2f}  {verdict}")
    print(f"\n{args.trials} trials each; worst ratio {worst:.2f} (target <= 0.25)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
