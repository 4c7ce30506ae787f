"""How fast each strategy finds good settings, judged on many seeds: four fixed tasks.

For every task, strategy and seed, 60 trials run one after another (parallelism 1) through the
real engine. The mark is random search's median best after its 60 trials (over the seeds run).
Printed per task and strategy, as means over the seeds with bootstrap 95% intervals: the trials
and the training epochs (as trained, early stops included) a study spends until its best first
reaches the mark (a seed that never gets there counts one trial past the budget, and its epochs
plus one full trial's), and the best after 60 trials. `optuna-tpe` is Optuna's own TPESampler
(its defaults) run directly on the same objective through `study.optimize`: the reference row.

Targets, judged on the upper end of the interval:
- coarse_to_fine reaches the mark with <= 40% of the epochs random search's 60 trials train,
  on >= 3 of the 4 tasks;
- tpe reaches it within <= 30 trials on >= 3 of the 4 tasks, and on each task takes no more
  trials than the upper end of Optuna's TPESampler's interval.

    .venv/bin/python bench/search.py [--seeds 20] [--first-seed 100] [--trials 60]
                                     [--strategies random,tpe,...] [--tasks ...]

Seeds from 100 on were never used to tune any strategy (coarse_to_fine's defaults and tpe's
were tuned on seeds 0-19, `--first-seed 0`): the default run judges on them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# Run as a script, this file's folder leads sys.path and its name hides the `search` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from hpsearch.search.definition import StudyDefinition  # noqa: E402
from hpsearch.search.strategies.base import TrialRecord  # noqa: E402
from hpsearch.search.strategies.optuna_samplers import suggest  # noqa: E402
from hpsearch.worker.engine import load_splits, train  # noqa: E402

# coarse_to_fine's target: the mark within this share of random's epochs, on this many tasks.
TARGET_EPOCH_SHARE, TARGET_TASKS = 0.4, 3
# tpe's: the mark within this many trials, on as many tasks.
TARGET_TRIALS = 30
BOOTSTRAP = 2000

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
    # Where the optimizer matters most: on two interleaved spirals plain sgd barely moves in
    # the epochs given, and adam / rmsprop win only at their own learning rates; momentum and
    # nag bring a conditional child.
    "spirals-mlp": {
        "dataset": {"name": "spirals"},
        "model": {"type": "mlp", "hidden": [64, 64], "activation": "relu", "init": "he"},
        "training": {"loss": "cross_entropy", "epochs": 40, "batch_size": 32},
        "space": {
            "training.optimizer": {"type": "categorical", "choices": OPTIMIZERS},
            "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
            "training.momentum": {
                "type": "float",
                "low": 0.5,
                "high": 0.99,
                "when": {"training.optimizer": ["momentum", "nag"]},
            },
        },
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
    },
}

STRATEGIES: dict[str, dict | None] = {
    "random": {"type": "random"},
    "tpe": {"type": "tpe", "n_startup_trials": 10},
    # Its defaults: 4 rounds at 1/8, 1/4, 1/2 and all of the task's epochs, each round 1.5
    # times the trials of the next (25, 17, 11 and 7 at 60).
    "coarse_to_fine": {"type": "coarse_to_fine"},
    "optuna-tpe": None,  # Optuna's TPESampler driven directly: see `optuna_run`
    "cmaes": {"type": "cmaes"},
    "qmc": {"type": "qmc"},
    "gp": {"type": "gp", "n_startup_trials": 10},
}
DEFAULT_STRATEGIES = "random,tpe,coarse_to_fine,optuna-tpe"


@dataclass
class Run:
    """One study: the best value after each trial and the epochs each trial trained."""

    best: list[float]
    epochs: list[int]


def definition_of(task: dict, strategy: dict, seed: int, trials: int) -> StudyDefinition:
    return StudyDefinition.model_validate(
        {
            **task,
            "name": "bench",
            "strategy": {**strategy, "seed": seed},
            "budget": {"trials": trials},
        }
    )


class Objective:
    """A task's training as a function of a trial's params: its value, and its epochs."""

    def __init__(self, definition: StudyDefinition) -> None:
        self.definition = definition
        self.metric = definition.objectives[0].metric
        self.splits = load_splits(definition.dataset)

    def __call__(self, params: dict) -> tuple[float | None, int]:
        result = train(self.definition.trial_config(params), self.splits)
        value = result.metrics.get(self.metric)
        ok = result.status == "complete" and value is not None
        return (float(value) if ok else None), len(result.history)


def curve(values: list[float | None], minimize: bool) -> list[float]:
    """The best value after each trial (a failed trial changes nothing)."""
    sign, out = (1.0 if minimize else -1.0), []
    for value in values:
        score = sign * value if value is not None else float("inf")
        out.append(min(out[-1], score) if out else score)
    return [sign * v for v in out]


def strategy_run(task: dict, strategy: dict, seed: int, trials: int) -> Run:
    """One sequential study through hpsearch's strategy, as the coordinator drives it."""
    definition = definition_of(task, strategy, seed, trials)
    objective, minimize = Objective(definition), definition.objectives[0].direction == "minimize"
    space, search = definition.search_space(), definition.make_strategy()
    history: list[TrialRecord] = []
    values: list[float | None] = []
    epochs: list[int] = []
    while len(history) < trials:
        (proposal,) = search.ask(space, history, 1)
        value, trained = objective(proposal.params)
        state = "complete" if value is not None else "failed"
        values.append(value)
        epochs.append(trained)
        record = TrialRecord(
            len(history), proposal.params, state, (value,) if value is not None else None
        )
        history.append(record)
    return Run(curve(values, minimize), epochs)


def optuna_run(task: dict, seed: int, trials: int) -> Run:
    """One study of Optuna's own TPESampler (its defaults) on the same objective."""
    definition = definition_of(task, {"type": "random"}, seed, trials)
    objective, space = Objective(definition), definition.search_space()
    direction = definition.objectives[0].direction
    epochs: list[int] = []

    def run(trial: optuna.Trial) -> float:
        value, trained = objective(suggest(trial, space))
        epochs.append(trained)
        return value if value is not None else float("nan")  # NaN: Optuna's failed trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials are expected
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(run, n_trials=trials)
    values = [
        t.value if t.state == optuna.trial.TrialState.COMPLETE else None for t in study.trials
    ]
    return Run(curve(values, direction == "minimize"), epochs)


def run_study(task: dict, name: str, seed: int, trials: int) -> Run:
    strategy = STRATEGIES[name]
    if strategy is None:
        return optuna_run(task, seed, trials)
    return strategy_run(task, strategy, seed, trials)


def to_mark(run: Run, mark: float, maximize: bool) -> tuple[int, int]:
    """Trials and epochs until the run's best first reaches `mark`; a run that never does
    counts one trial past its budget, and its epochs plus one more trial's at the most."""
    spent = 0
    for i, (best, epochs) in enumerate(zip(run.best, run.epochs, strict=True)):
        spent += epochs
        if (best >= mark) if maximize else (best <= mark):
            return i + 1, spent
    return len(run.best) + 1, spent + max(run.epochs)


def interval(samples: list[float], seed: int = 0) -> tuple[float, float, float]:
    """The mean of `samples` and its bootstrap 95% interval (percentile, 2000 resamples)."""
    data = np.asarray(samples, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(len(data), size=(BOOTSTRAP, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(data.mean()), float(low), float(high)


def shown(stats: tuple[float, float, float], digits: int = 1) -> str:
    mean, low, high = stats
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--strategies", default=DEFAULT_STRATEGIES)
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # each task as done
    names, tasks = args.strategies.split(","), args.tasks.split(",")
    if "random" not in names:
        parser.error("--strategies: random is needed, its median best is the mark")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    started = time.perf_counter()
    met = {"tpe": 0, "coarse_to_fine": 0}
    for task_name in tasks:
        task = TASKS[task_name]
        maximize = task["objective"]["direction"] == "maximize"
        runs = {
            name: [run_study(task, name, seed, args.trials) for seed in seeds] for name in names
        }
        mark = statistics.median(r.best[-1] for r in runs["random"])
        random_epochs = interval([sum(r.epochs) for r in runs["random"]])
        print(
            f"\n{task_name}: mark (random's {args.trials}-trial median best"
            f" {task['objective']['metric']}) = {mark:.4f};"
            f" random's {args.trials} trials train {shown(random_epochs, 0)} epochs"
        )
        print(
            f"  {'strategy':<15} {'trials to mark':<22} {'epochs to mark':<25}"
            f" {'% of random':<8} {'missed':<7} final best"
        )
        judged: dict[str, tuple] = {}
        for name in names:
            reached = [to_mark(r, mark, maximize) for r in runs[name]]
            trials = interval([float(t) for t, _ in reached])
            epochs = interval([float(e) for _, e in reached])
            final = interval([r.best[-1] for r in runs[name]])
            missed = sum(t > args.trials for t, _ in reached)
            share = epochs[2] / random_epochs[0]
            judged[name] = (trials, share)
            print(
                f"  {name:<15} {shown(trials):<22} {shown(epochs, 0):<25} {share:<8.0%}"
                f" {missed:<7} {shown(final, 4)}"
            )
        if "coarse_to_fine" in judged:
            ok = judged["coarse_to_fine"][1] <= TARGET_EPOCH_SHARE
            met["coarse_to_fine"] += ok
            print(f"  coarse_to_fine: upper end of its epochs <= 40% of random's: {ok}")
        if "tpe" in judged:
            within = judged["tpe"][0][2] <= TARGET_TRIALS
            reference = judged.get("optuna-tpe")
            no_worse = reference is None or judged["tpe"][0][0] <= reference[0][2]
            met["tpe"] += within and no_worse
            print(
                f"  tpe: upper end <= {TARGET_TRIALS} trials: {within};"
                f" mean no worse than optuna-tpe's upper end: {no_worse}"
            )
    elapsed = time.perf_counter() - started
    print(f"\nseeds {seeds.start}-{seeds.stop - 1}, {args.trials} trials each, {elapsed:.0f} s")
    for name, count in met.items():
        if name in names:
            verdict = "met" if count >= TARGET_TASKS else "NOT met"
            print(f"target for {name}: {verdict} ({count} of {len(tasks)} tasks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
