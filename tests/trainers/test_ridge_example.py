"""The example trainer package (examples/trainers/ridge), installed as a user would install it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from hpsearch_ridge import Data, RidgeConfig, RidgeTrainer, _data

from tests.conftest import ROOT

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")


class Recording:
    """A context that records every report and never asks to stop."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.reports: list[tuple[int, dict]] = []

    def report(self, step: int, metrics: Mapping[str, float]) -> bool:
        self.reports.append((step, dict(metrics)))
        return False

    def dataset(self, ref: str):  # type: ignore[no-untyped-def]
        raise LookupError(ref)


def test_gradient_descent_reaches_the_closed_form_ridge_solution() -> None:
    config = RidgeConfig(data=Data(n_samples=200, n_features=5), alpha=0.3, steps=2000)
    context = Recording(seed=3)
    final = RidgeTrainer().train(config, context)
    # The rows the trainer fits, split and standardised as it does; then the minimiser of
    # mean((Xw + b - y)^2) + alpha |w|^2 in closed form:
    # b = mean(y) and (X'X/n + alpha I) w = X'(y - b)/n.
    X, y = _data(config.data, context)
    order = np.random.default_rng(3).permutation(len(y))
    fit = order[int(len(y) * config.data.validation) :]
    Xf = (X[fit] - X[fit].mean(axis=0)) / (X[fit].std(axis=0) + 1e-12)
    b = y[fit].mean()
    w = np.linalg.solve(Xf.T @ Xf / len(fit) + 0.3 * np.eye(5), Xf.T @ (y[fit] - b) / len(fit))
    optimum = np.mean((Xf @ w + b - y[fit]) ** 2)
    assert final["train_loss"] == pytest.approx(optimum, rel=1e-6)
    assert [step for step, _ in context.reports] == list(range(1, 2001))
    assert final["val_rmse"] == pytest.approx(np.sqrt(final["val_loss"]))


def test_the_example_study_runs_embedded_with_pruning(tmp_path: Path) -> None:
    database = tmp_path / "ridge.db"
    done = subprocess.run(
        [HPSEARCH, "run", str(ROOT / "examples/trainers/ridge/study.yaml")],
        env={"PATH": "/usr/bin:/bin", "HPSEARCH_DATABASE_URL": f"sqlite:///{database}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(database) as db:
        states = dict(db.execute("SELECT lower(state), count(*) FROM trials GROUP BY 1").fetchall())
        best = db.execute(
            "SELECT min(value) FROM trials WHERE lower(state) = 'complete'"
        ).fetchone()[0]
        steps = db.execute("SELECT count(*) FROM trial_metrics").fetchone()[0]
    assert sum(states.values()) == 20 and states.get("failed", 0) == 0
    assert states.get("pruned", 0) >= 1  # the median pruner stops the hopeless step sizes
    # The data's noise is 0.5: a well-tuned ridge gets close to it, a bad one nowhere near.
    assert best < 0.7
    assert steps > 20  # per-step curves were recorded
