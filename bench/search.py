"""How fast each strategy finds good settings: best-so-far curves on three fixed tasks.

For every task, strategy and seed, 60 trials run one after another (parallelism 1) through the
real engine. Printed: the mean number of trials each strategy needs to reach random search's
60-trial median best (">60" counts as 61 in the mean, and the column says how many seeds never
got there), and the mean best after 60 trials. Target: tpe and coarse_to_fine reach random's
mark in <= 30 trials on at least two of the three tasks.

    .venv/bin/python bench/search.py [--seeds 5] [--trials 60] [--strategies random,tpe,...]

The official figures use seeds 0-4; `--first-seed 100 --seeds 40` checks a change on seeds it
was not tuned on (random's mark is then the median over those seeds too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# Run as a script, this file's folder leads sys.path and its name hides the `search` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from search.definition import StudyDefinition  # noqa: E402
from search.strategies.base import TrialRecord  # noqa: E402
from worker.engine import load_splits, train  # noqa: E402

OPTIMIZERS = ["sgd", "momentum", "nag", "adagrad", "rmsprop", "adam"]

TASKS: dict[str, dict] = {
    "digits-mlp": {
        "dataset": {"name": "digits"},
        "model": {"type": "mlp", "hidden": [32], "activation": "relu", "init": "he"},
        "training": {"loss": "cross_entropy", "epochs": 12, "batch_size": 64},
        "space": {
            "training.optimizer": {"type": "categorical", "choices": OPTIMIZERS},
            "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
            "training.batch_size": {"type": "int", "low": 16, "high": 256, "log": True},
            "model.hidden": {"type": "categorical", "choices": [[16], [32], [64], [64, 32]]},
        },
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
    },
    "wine-softmax": {
        "dataset": {"name": "wine"},
        "model": {"type": "softmax", "init": "zeros"},
        "training": {"loss": "cross_entropy", "epochs": 20, "batch_size": 16},
        "space": {
            "training.optimizer": {"type": "categorical", "choices": OPTIMIZERS},
            "training.learning_rate": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
            "training.weight_decay": {"type": "float", "low": 1e-6, "high": 1.0, "log": True},
        },
        "objective": {"metric": "val_loss", "direction": "minimize"},
    },
    "cubic-regression": {
        "dataset": {"name": "cubic"},
        "model": {"type": "mlp", "hidden": [32], "activation": "tanh", "init": "xavier"},
        "training": {"loss": "mse", "epochs": 30, "batch_size": 32},
        "space": {
            "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
            "model.hidden": {"type": "categorical", "choices": [[8], [32], [64], [32, 32]]},
            "model.activation": {"type": "categorical", "choices": ["tanh", "relu", "sigmoid"]},
            "training.optimizer": {"type": "categorical", "choices": OPTIMIZERS},
        },
        "objective": {"metric": "val_rmse", "direction": "minimize"},
    },
}

STRATEGIES: dict[str, dict] = {
    "random": {"type": "random"},
    "tpe": {"type": "tpe", "n_startup_trials": 10},
    # Its defaults: 4 rounds sharing the budget, i.e. 15 trials each at 60.
    "coarse_to_fine": {"type": "coarse_to_fine"},
    "cmaes": {"type": "cmaes"},
    "qmc": {"type": "qmc"},
    "gp": {"type": "gp", "n_startup_trials": 10},
}


def best_so_far(task: dict, strategy: dict, seed: int, trials: int) -> list[float]:
    """The best objective value after each trial of one sequential study."""
    definition = StudyDefinition.model_validate(
        {
            **task,
            "name": "bench",
            "strategy": {**strategy, "seed": seed},
            "budget": {"trials": trials},
        }
    )
    objective = definition.objectives[0]
    sign = 1.0 if objective.direction == "minimize" else -1.0
    space, search = definition.search_space(), definition.make_strategy()
    splits = load_splits(definition.dataset)
    history: list[TrialRecord] = []
    curve: list[float] = []
    while len(history) < trials:
        (proposal,) = search.ask(space, history, 1)
        result = train(definition.trial_config(proposal.params), splits)
        value = result.metrics.get(objective.metric)
        ok = result.status == "complete" and value is not None
        history.append(
            TrialRecord(
                len(history),
                proposal.params,
                "complete" if ok else "failed",
                (value,) if ok else None,
            )
        )
        score = sign * value if ok else float("inf")
        curve.append(min(curve[-1], score) if curve else score)
    return [sign * v for v in curve]


def trials_to_reach(curve: list[float], target: float, maximize: bool) -> int | None:
    """1-based trial at which the curve first reaches `target`, or None."""
    for i, value in enumerate(curve):
        if (value >= target) if maximize else (value <= target):
            return i + 1
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    names, tasks = args.strategies.split(","), args.tasks.split(",")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    started = time.perf_counter()
    rows: dict[str, list[str]] = {name: [] for name in names}
    met: dict[str, int] = dict.fromkeys(names, 0)
    for task_name in tasks:
        task = TASKS[task_name]
        maximize = task["objective"]["direction"] == "maximize"
        curves = {
            name: [best_so_far(task, STRATEGIES[name], seed, args.trials) for seed in seeds]
            for name in names
        }
        target = statistics.median(c[-1] for c in curves["random"])
        print(
            f"{task_name}: random's {args.trials}-trial median best "
            f"{task['objective']['metric']} = {target:.4f}",
            file=sys.stderr,
        )
        for name in names:
            reached = [trials_to_reach(c, target, maximize) for c in curves[name]]
            mean_trials = statistics.mean(r if r is not None else args.trials + 1 for r in reached)
            missed = sum(r is None for r in reached)
            final = statistics.mean(c[-1] for c in curves[name])
            met[name] += mean_trials <= 30
            note = f" ({missed} missed)" if missed else ""
            rows[name].append(f"{mean_trials:5.1f}{note:<11} {final:8.4f}")
    header = "".join(f"| {t:<20} trials / final best " for t in tasks)
    print(f"\n{'strategy':<16}{header}")
    for name in names:
        cells = "".join(f"| {cell:<41}" for cell in rows[name])
        print(f"{name:<16}{cells}")
    elapsed = time.perf_counter() - started
    print(f"\nseeds {seeds.start}-{seeds.stop - 1}, {args.trials} trials each, {elapsed:.0f} s")
    for name in ("tpe", "coarse_to_fine"):
        if name in met:
            verdict = "met" if met[name] >= 2 else "NOT met"
            print(
                f"target ({name} reaches random's mark in <= 30 trials on >= 2 tasks): "
                f"{verdict} ({met[name]} of {len(tasks)})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
