"""Population-based training against random search and TPE at equal total epochs, on a task where
a schedule of learning rates beats any constant one.

The task: an MLP (32 tanh units) fitting the `cubic` set by plain SGD in batches of 8 for 24
epochs, searching only the learning rate. A decaying rate wins there: the bench prints, for
reference, the best constant rate and the best exponential decay found on a grid. pbt trains
8 members in intervals of 4 epochs (6 generations, 48 trials of 4 epochs, 192 epochs in all)
and can change a member's rate at every interval; random and tpe get the same 192 epochs as 8
trials of 24. Each runs in this process through the same strategies and engine as the service
(pbt's members resume their parents' checkpoints as the runner has them do). Printed per
strategy: the mean over seeds of the best final val_loss, with a bootstrap 95% interval.

    .venv/bin/python bench/pbt.py [--seeds 20] [--first-seed 0]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# The repository first, for `hpsearch` to be this checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from hpsearch.search.definition import StudyDefinition  # noqa: E402
from hpsearch.search.strategies.base import Proposal, TrialRecord  # noqa: E402
from hpsearch.worker.engine import Splits, TrainConfig, TrainResult, load_splits, train  # noqa: E402

POPULATION, INTERVAL, EPOCHS = 8, 4, 24
METRIC = "val_loss"
TASK: dict[str, Any] = {
    "name": "pbt-bench",
    "dataset": {"name": "cubic"},
    "model": {"type": "mlp", "hidden": [32], "activation": "tanh", "init": "xavier"},
    "training": {"optimizer": "sgd", "loss": "mse", "epochs": EPOCHS, "batch_size": 8},
    "space": {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}},
    "objective": {"metric": METRIC, "direction": "minimize"},
}
STRATEGIES = {
    "pbt": {"type": "pbt", "population": POPULATION, "interval": INTERVAL},
    "random": {"type": "random"},
    "tpe": {"type": "tpe", "n_startup_trials": 4},
}
TOTAL_EPOCHS = POPULATION * EPOCHS


def definition(strategy: dict[str, Any], seed: int) -> StudyDefinition:
    trials = TOTAL_EPOCHS // (INTERVAL if strategy["type"] == "pbt" else EPOCHS)
    return StudyDefinition.model_validate(
        TASK | {"strategy": strategy | {"seed": seed}, "budget": {"trials": trials}}
    )


def best_value(study: StudyDefinition, splits: Splits) -> tuple[float, int]:
    """One sequential study: the best final val_loss (of pbt's last generation) and the
    epochs it trained."""
    space, search = study.search_space(), study.make_strategy()
    history: list[TrialRecord] = []
    states: dict[int, bytes] = {}  # trial number -> its final state (pbt)
    epochs = 0
    while len(history) < study.budget.trials:
        for proposal in search.ask(space, history, POPULATION)[
            : study.budget.trials - len(history)
        ]:
            result, trained, state = run_one(study, proposal, splits, states)
            epochs += trained
            if state is not None:
                states[len(history)] = state
            value = result.metrics.get(METRIC)
            ok = result.status == "complete" and value is not None and math.isfinite(value)
            history.append(
                TrialRecord(
                    len(history),
                    proposal.params,
                    "complete" if ok else "failed",
                    values=(value,) if ok else None,
                    lineage=proposal.lineage,
                )
            )
    last = max((r.lineage or {}).get("generation", 0) for r in history)
    final = [
        r.value
        for r in history
        if r.value is not None and (r.lineage or {}).get("generation", 0) == last
    ]
    return min(final, default=math.inf), epochs


def run_one(
    study: StudyDefinition, proposal: Proposal, splits: Splits, states: dict[int, bytes]
) -> tuple[TrainResult, int, bytes | None]:
    """One trial as the runner trains it: from its parent's state if it has one (pbt), its
    final state kept when it reaches the epoch its lineage names. Also the epochs it trained."""
    lineage = proposal.lineage or {}
    parent = lineage.get("parent")
    trained: list[int] = []
    kept: list[bytes] = []

    def keep(epoch: int, save: Callable[[], bytes]) -> None:
        if epoch == lineage.get("until"):
            kept.append(save())

    result = train(
        study.trial_config(proposal.params),
        splits,
        lambda epoch, _: trained.append(epoch),  # the epochs it reports are those it trains
        resume=None if parent is None else states.get(parent),
        on_checkpoint=keep,
    )
    return result, len(trained), kept[0] if kept else None


def bootstrap(
    values: list[float], rng: np.random.Generator, draws: int = 4000
) -> tuple[float, float]:
    """A 95% percentile interval of the mean."""
    samples = rng.choice(np.asarray(values), size=(draws, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def reference(splits: Splits) -> tuple[tuple[float, float], tuple[float, float, float]]:
    """The best constant learning rate and the best exponential decay on a grid."""

    def value(rate: float, schedule: dict | None = None) -> float:
        document = {k: TASK[k] for k in ("dataset", "model")} | {
            "training": TASK["training"]
            | {"learning_rate": rate}
            | ({"schedule": schedule} if schedule else {})
        }
        result = train(TrainConfig.parse(document), splits)
        return result.metrics.get(METRIC, math.inf) if result.status == "complete" else math.inf

    constant = min((value(r), r) for r in np.geomspace(1e-3, 1.0, 64))
    decay = min(
        (value(r, {"type": "exponential", "rate": d}), r, d)
        for r in np.geomspace(1e-2, 1.0, 9)
        for d in (0.6, 0.7, 0.8, 0.9)
    )
    return constant, decay


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    splits = load_splits(definition(STRATEGIES["random"], 0).dataset)
    started = time.perf_counter()
    (constant, rate), (decayed, base, factor) = reference(splits)
    print(f"best constant learning rate {rate:.3g}: {METRIC} {constant:.4f}")
    print(f"best exponential decay {base:.3g} x {factor:g}^(epoch-1): {METRIC} {decayed:.4f}\n")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rng = np.random.default_rng(0)
    print(f"{'strategy':<8} {'epochs':>7} {'mean best ' + METRIC:>20} {'95% interval':>20}")
    for name, strategy in STRATEGIES.items():
        runs = [best_value(definition(strategy, seed), splits) for seed in seeds]
        values = [value for value, _ in runs]
        low, high = bootstrap(values, rng)
        epochs = statistics.mean(e for _, e in runs)
        interval = f"[{low:.4f}, {high:.4f}]"
        print(f"{name:<8} {epochs:7.0f} {statistics.mean(values):20.4f} {interval:>20}")
    print(f"\n{args.seeds} seeds from {args.first_seed}, {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
