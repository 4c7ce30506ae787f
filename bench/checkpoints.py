"""What checkpoints cost a trial: whole trials run with none, with the default and with one every
epoch, through the real runner on SQLite, alternating, for two model sizes on digits.

Printed per model: the state's size, one serialization's median time, the median trial wall
time per setting with its ratio to none, and what one checkpoint costs a trial in all
(serializing and writing it with the pending metrics: the every-epoch trial's extra time per
epoch). Trials this short never reach the default's 30 s, so its cost is read from that: one
checkpoint per 30 s of training. Target: the default costs under 2% of a trial's time.

    .venv/bin/python bench/checkpoints.py [--repeats 3] [--epochs 30]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hpsearch.db import queries  # noqa: E402
from hpsearch.db.migrate import upgrade  # noqa: E402
from hpsearch.db.session import session_scope  # noqa: E402
from hpsearch.search import coordinator  # noqa: E402
from hpsearch.search.definition import CheckpointsConfig, StudyDefinition  # noqa: E402
from hpsearch.worker.engine import load_splits, train  # noqa: E402
from hpsearch.worker.runner import run_trial  # noqa: E402

EVERY_S = CheckpointsConfig().every_seconds or math.inf
MODELS = {"mlp-32": [32], "mlp-256-256": [256, 256]}
SETTINGS = {
    "none": {"every_seconds": None},
    "default": {},
    "every epoch": {"every_seconds": None, "every_epochs": 1},
}


def study(hidden: list[int], epochs: int, checkpoints: dict) -> dict:
    return {
        "name": "checkpoint-cost",
        "dataset": {"name": "digits"},
        "model": {"type": "mlp", "hidden": hidden},
        "training": {"optimizer": "adam", "learning_rate": 0.001, "epochs": epochs},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "budget": {"trials": 1},
        "checkpoints": checkpoints,
    }


def trial_seconds(url: str, definition: dict) -> float:
    """One trial run through the coordinator and runner: its wall time, claim to end."""
    parsed = StudyDefinition.model_validate(definition)
    with session_scope(url) as session:
        team = queries.ensure_team(session)
        study_id = coordinator.create_study(session, team_id=team, definition=parsed).id
    queue: list[int] = []
    coordinator.refill(study_id, dispatch=queue.extend, url=url)
    started = time.perf_counter()
    run_trial(queue.pop(), url=url)
    return time.perf_counter() - started


def save_seconds(hidden: list[int], epochs: int) -> tuple[int, float]:
    """The state's size and one save's median time (serialization only), in the engine."""
    definition = StudyDefinition.model_validate(study(hidden, epochs, {}))
    config = definition.trial_config({})
    sizes: list[int] = []
    times: list[float] = []

    def keep(epoch: int, save: object) -> None:
        started = time.perf_counter()
        sizes.append(len(save()))  # type: ignore[operator]
        times.append(time.perf_counter() - started)

    train(config, load_splits(config.dataset), on_checkpoint=keep)
    return sizes[-1], statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    header = "  ".join(f"{s:>12}" for s in SETTINGS)
    print(f"{'model':<12} {'state':>9} {'save ms':>8}  {header}  {'ckpt ms':>8} {'default':>8}")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        upgrade(url)
        for label, hidden in MODELS.items():
            size, save = save_seconds(hidden, args.epochs)
            runs: dict[str, list[float]] = {name: [] for name in SETTINGS}
            for _ in range(args.repeats):  # alternating, so drift hits every setting alike
                for name, checkpoints in SETTINGS.items():
                    runs[name].append(trial_seconds(url, study(hidden, args.epochs, checkpoints)))
            base = statistics.median(runs["none"])
            cells = [
                f"{statistics.median(r):6.2f}s {statistics.median(r) / base:4.2f}x"
                for r in runs.values()
            ]
            every = (statistics.median(runs["every epoch"]) - base) / args.epochs
            default = every / EVERY_S
            print(
                f"{label:<12} {size / 1024:7.0f}KB {save * 1e3:8.2f}  {'  '.join(cells)}"
                f"  {every * 1e3:8.2f} {default:8.3%}"
            )
    print(
        f"\n{args.epochs} epochs a trial, median of {args.repeats}; ratios to no checkpoints."
        f" default: one checkpoint per {EVERY_S:g} s of training. Target: default <= 2%."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
