"""How fast each strategy finds good settings: best-so-far curves on three fixed tasks.

For every task, strategy and seed, 60 trials run one after another (parallelism 1) through the
real engine. Printed: the mean number of trials each strategy needs to reach random search's
60-trial median best (">60" counts as 61 in the mean, and the column says how many seeds never
got there), and the mean best after 60 trials. Target: tpe and coarse_to_fine reach random's
mark in <= 30 trials on at least two of the three tasks.

    .venv/bin/python bench/search.py [--seeds 5] [--trials 60] [--strategies random,tpe,...]

The official figures use seeds 0-4; `--first-seed 100 --seeds 80` checks a change on seeds it
was not tuned on (random's mark is then the median over those seeds too). With that many seeds it
also judges each block of 5 consecutive seeds as an official run would be, with the block's own
mark, and prints how many blocks meet the target: how likely a 5-seed run is to pass.
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

from hpsearch.search.definition import StudyDefinition  # noqa: E402
from hpsearch.search.strategies.base import TrialRecord  # noqa: E402
from hpsearch.worker.engine import load_splits, train  # noqa: E402

# The target: reach random's mark within this many trials on at least this many tasks.
TARGET_TRIALS, TARGET_TASKS = 30, 2

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


def random_mark(curves: dict[str, list[list[float]]]) -> float:
    """The mark: random search's median best after the last trial."""
    return statistics.median(c[-1] for c in curves["random"])


def mean_trials(curves: list[list[float]], mark: float, maximize: bool) -> tuple[float, int]:
    """The mean trials the curves take to reach `mark` (one past the budget if never), and how
    many never do."""
    reached = [trials_to_reach(c, mark, maximize) for c in curves]
    budget = len(curves[0])
    return statistics.mean(r if r is not None else budget + 1 for r in reached), reached.count(None)


def blocks_meeting(
    curves: dict[str, dict[str, list[list[float]]]], name: str, block: int
) -> tuple[int, int]:
    """Of the consecutive blocks of `block` seeds, how many meet the target for strategy
    `name`, each judged as an official run of `block` seeds is (its own random mark); and
    how many blocks there are."""
    seeds = len(next(iter(curves.values()))["random"])
    met = 0
    for start in range(0, seeds - block + 1, block):
        tasks_met = 0
        for task_name, by_strategy in curves.items():
            part = {n: c[start : start + block] for n, c in by_strategy.items()}
            maximize = TASKS[task_name]["objective"]["direction"] == "maximize"
            tasks_met += mean_trials(part[name], random_mark(part), maximize)[0] <= TARGET_TRIALS
        met += tasks_met >= TARGET_TASKS
    return met, seeds // block


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument(
        "--block", type=int, default=5, help="with more seeds, also judge each block of this many"
    )
    args = parser.parse_args()
    names, tasks = args.strategies.split(","), args.tasks.split(",")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    started = time.perf_counter()
    rows: dict[str, list[str]] = {name: [] for name in names}
    met: dict[str, int] = dict.fromkeys(names, 0)
    curves: dict[str, dict[str, list[list[float]]]] = {}
    for task_name in tasks:
        task = TASKS[task_name]
        maximize = task["objective"]["direction"] == "maximize"
        curves[task_name] = {
            name: [best_so_far(task, STRATEGIES[name], seed, args.trials) for seed in seeds]
            for name in names
        }
        target = random_mark(curves[task_name])
        print(
            f"{task_name}: random's {args.trials}-trial median best "
            f"{task['objective']['metric']} = {target:.4f}",
            file=sys.stderr,
        )
        for name in names:
            trials, missed = mean_trials(curves[task_name][name], target, maximize)
            final = statistics.mean(c[-1] for c in curves[task_name][name])
            met[name] += trials <= TARGET_TRIALS
            note = f" ({missed} missed)" if missed else ""
            rows[name].append(f"{trials:5.1f}{note:<11} {final:8.4f}")
    header = "".join(f"| {t:<20} trials / final best " for t in tasks)
    print(f"\n{'strategy':<16}{header}")
    for name in names:
        cells = "".join(f"| {cell:<41}" for cell in rows[name])
        print(f"{name:<16}{cells}")
    elapsed = time.perf_counter() - started
    print(f"\nseeds {seeds.start}-{seeds.stop - 1}, {args.trials} trials each, {elapsed:.0f} s")
    for name in ("tpe", "coarse_to_fine"):
        if name in met:
            verdict = "met" if met[name] >= TARGET_TASKS else "NOT met"
            print(
                f"target ({name} reaches random's mark in <= {TARGET_TRIALS} trials "
                f"on >= {TARGET_TASKS} tasks): {verdict} ({met[name]} of {len(tasks)})"
            )
            if args.seeds >= 2 * args.block and len(tasks) == len(TASKS):
                passed, blocks = blocks_meeting(curves, name, args.block)
                print(f"  blocks of {args.block} seeds meeting it: {passed} of {blocks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
