"""`hpsearch.optimize`: a study run in this process with a Python function (or a Trainer) as its
trainer, through the runner every worker uses, its results in SQLite."""

from __future__ import annotations

import _thread
import math
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

import hpsearch
from hpsearch.db import queries
from hpsearch.db.session import session_scope
from hpsearch.trainer import Context, Trainer

OPTIMUM = (0.3, -0.2)


def paraboloid(config: dict[str, Any], context: Context) -> dict[str, float]:
    """loss = distance² to OPTIMUM, approached as 1/step over 20 steps."""
    loss = (config["x"] - OPTIMUM[0]) ** 2 + (config["y"] - OPTIMUM[1]) ** 2
    for step in range(1, 21):
        if context.report(step, {"loss": loss + 1.0 / step}):
            break
    return {"loss": loss}


def study(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "paraboloid",
        "config": {"x": 0.0, "y": 0.0},
        "space": {
            "x": {"type": "float", "low": -1.0, "high": 1.0},
            "y": {"type": "float", "low": -1.0, "high": 1.0},
        },
        "strategy": {"type": "tpe", "seed": 0, "n_startup_trials": 8},
        "objective": {"metric": "loss", "direction": "minimize"},
        "budget": {"trials": 30},
    }
    return {**document, **overrides}


def curve_steps(url: str, study_id: int) -> dict[int, list[int]]:
    """The steps of each trial's stored learning curve, by trial number."""
    with session_scope(url) as session:
        return {
            trial.number: [m.step for m in queries.metrics_of(session, trial.id)]
            for trial in queries.trials_of(session, study_id)
        }


def test_a_function_is_tuned_with_pruning_to_near_the_optimum(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    pruner = {"type": "median", "warmup_epochs": 3, "min_trials": 3}
    result = hpsearch.optimize(study(pruner=pruner), paraboloid, db=db)

    assert result.status == "complete"
    states = Counter(trial["state"] for trial in result.trials)
    assert states["complete"] + states["pruned"] == 30 and states["pruned"] >= 5
    steps = curve_steps(f"sqlite:///{db}", result.study_id)
    for trial in result.trials:
        if trial["state"] == "pruned":
            k = int(re.fullmatch(r"pruned at step (\d+)", trial["reason"]).group(1))
            assert 3 < k < 20 and steps[trial["number"]] == list(range(1, k + 1))
        else:
            assert steps[trial["number"]] == list(range(1, 21))
    best = result.best
    assert best is not None and best.values["loss"] < 0.02
    assert best.config == best.params == {"x": best.params["x"], "y": best.params["y"]}
    assert math.dist((best.params["x"], best.params["y"]), OPTIMUM) < 0.15


class Line(BaseModel):
    slope: float = Field(1.0, ge=-2, le=2)
    steps: int = Field(4, ge=1)


class LineFit(Trainer):
    name = "line-fit"
    version = "1"
    Config = Line
    step_metrics = ("error",)
    final_metrics = ("error", "slope")

    def train(self, config: Line, context: Context) -> dict[str, float]:  # type: ignore[override]
        assert isinstance(config, Line)  # a failed trial otherwise
        for step in range(1, config.steps + 1):
            context.report(step, {"error": abs(config.slope - 0.5) + 1 / step})
        return {"error": abs(config.slope - 0.5), "slope": config.slope}


def test_a_trainer_class_is_the_studys_trainer_with_its_config_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = study(
        config={"steps": 3},
        space={"slope": {"type": "float", "low": -2.0, "high": 2.0}},
        strategy={"type": "grid", "n": 9},
        objective={"metric": "error", "direction": "minimize"},
        budget={"trials": 9, "parallelism": 3},  # on three threads
    )
    result = hpsearch.optimize(document, LineFit, db=tmp_path / "runs.db", progress=True)
    assert [trial["state"] for trial in result.trials] == ["complete"] * 9
    assert re.search(r"trials .* 9/9 .* best error 0\.0000", capsys.readouterr().err)
    assert result.best is not None and result.best.params == {"slope": 0.5}
    assert result.best.config == {"steps": 3, "slope": 0.5}
    assert result.best.values == {"error": 0.0, "slope": 0.5}


def test_exceptions_and_nan_are_failed_trials_not_exceptions_out_of_optimize(
    tmp_path: Path,
) -> None:
    def objective(config: dict[str, Any], context: Context) -> Any:
        number = config["case"]
        if number == 0:
            return helper()
        if number == 1:
            context.report(1, {"loss": 1.0})
            context.report(2, {"loss": math.nan})
            return {"loss": 0.0}
        if number == 2:
            return {"loss": math.nan}
        if number == 3:
            return {"lss": 1.0}
        return 0.25  # one number: the objective's value

    def helper() -> float:
        raise ValueError("no data for this case")

    document = study(
        config={},
        space={"case": {"type": "categorical", "choices": [0, 1, 2, 3, 4]}},
        strategy={"type": "grid"},
        budget={"trials": 5},
    )
    result = hpsearch.optimize(document, objective, db=tmp_path / "runs.db")
    ends = {t["params"]["case"]: (t["state"], t["reason"]) for t in result.trials}
    assert ends == {
        0: ("failed", "error: ValueError: no data for this case"),
        1: ("failed", "diverged at step 2 (loss nan)"),
        2: ("failed", "diverged: final loss is nan"),
        3: ("failed", "error: ValueError: the objective returned no 'loss' (it returned: lss)"),
        4: ("complete", None),
    }
    with session_scope(f"sqlite:///{tmp_path / 'runs.db'}") as session:
        first = queries.trial_by_number(session, result.study_id, 0)
        lines = (first.traceback or "").splitlines()
    assert lines[-1] == "ValueError: no data for this case"
    assert re.fullmatch(r'  File ".+/test_optimize\.py", line \d+, in helper', lines[-3])
    assert result.best is not None and result.best.values == {"loss": 0.25}


@pytest.mark.parametrize(
    ("overrides", "options", "field", "message"),
    [
        ({"budget": {"trials": 0}}, {}, "budget.trials", "greater than or equal to 1"),
        ({"budget": None}, {}, "budget", "valid dictionary"),
        ({"pruner": {"type": "median", "warmup": 2}}, {}, "pruner.warmup", "not permitted"),
        ({}, {"metrics": ["accuracy"]}, "objective", "returns no 'loss'"),
        ({}, {"config_model": Line}, "space", "'x' is not a setting of trainer"),
        ({"config": {"slope": 9}}, {"config_model": Line}, "config.slope", "maximum of 2"),
        ({"trainer": "Bad Name"}, {}, "trainer", "should match pattern"),
    ],
)
def test_a_study_it_cannot_run_is_an_error_naming_the_field(
    tmp_path: Path, overrides: dict, options: dict, field: str, message: str
) -> None:
    with pytest.raises(hpsearch.StudyError) as raised:
        hpsearch.optimize(study(**overrides), paraboloid, db=tmp_path / "runs.db", **options)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ") and message in str(raised.value)


def test_a_study_file_runs_and_an_unreadable_one_or_an_unknown_id_is_an_error(
    tmp_path: Path,
) -> None:
    path, db = tmp_path / "study.yaml", tmp_path / "runs.db"
    path.write_text(yaml.safe_dump(study(budget={"trials": 3})))
    result = hpsearch.optimize(path, paraboloid, db=db)
    assert [t["state"] for t in result.trials] == ["complete"] * 3
    path.write_text("name: [unclosed")
    with pytest.raises(hpsearch.StudyError, match=f"cannot read {path}: while parsing"):
        hpsearch.optimize(path, paraboloid, db=db)
    with pytest.raises(hpsearch.StudyError, match="study: no study 99 in sqlite:///") as raised:
        hpsearch.optimize(99, paraboloid, db=db)
    assert raised.value.field == "study"


def test_an_installed_trainers_name_is_refused(tmp_path: Path, test_trainers: Path) -> None:
    with pytest.raises(hpsearch.StudyError, match="'quadratic' is already the name") as raised:
        hpsearch.optimize(study(trainer="quadratic"), paraboloid, db=tmp_path / "runs.db")
    assert raised.value.field == "trainer"


def test_ctrl_c_stops_and_the_study_continues_where_it_stopped(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    calls: list[float] = []

    def interrupted(config: dict[str, Any], context: Context) -> dict[str, float]:
        calls.append(config["x"])
        if len(calls) == 4:
            context.report(1, {"loss": 9.0})
            raise KeyboardInterrupt  # what Ctrl-C raises in the trainer's code
        return paraboloid(config, context)

    with pytest.raises(KeyboardInterrupt) as raised:
        hpsearch.optimize(study(budget={"trials": 8}), interrupted, db=db)
    (note,) = raised.value.__notes__
    study_id = int(re.search(r"study (\d+) stopped with 3 finished trials kept", note).group(1))
    assert f"hpsearch.optimize({study_id}, objective, db=" in note

    result = hpsearch.optimize(study_id, paraboloid, db=db)
    assert result.status == "complete"
    assert [t["state"] for t in result.trials] == ["complete"] * 8
    assert result.trials[3]["params"]["x"] == calls[3]  # the same trial ran again, from step 1
    assert curve_steps(f"sqlite:///{db}", study_id)[3] == list(range(1, 21))


def test_ctrl_c_with_threads_keeps_no_curve_of_the_interrupted_trials(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    started = threading.Barrier(2)

    def slow(config: dict[str, Any], context: Context) -> dict[str, float]:
        started.wait(timeout=30)  # both trials are training
        for step in range(1, 1000):
            if step == 3 and threading.current_thread().name == "trial-0":
                _thread.interrupt_main()  # Ctrl-C, as the main thread gets it
            if context.report(step, {"loss": 1.0 / step}):
                break
            threading.Event().wait(0.01)
        return {"loss": 0.0}

    def fast(config: dict[str, Any], context: Context) -> dict[str, float]:
        context.report(1, {"loss": 1.0})
        return {"loss": 1.0}

    budget = {"trials": 4, "parallelism": 2}
    with pytest.raises(KeyboardInterrupt):
        hpsearch.optimize(study(budget=budget, name="slow"), slow, db=db)
    url = f"sqlite:///{db}"
    (study_id,) = [s.id for s in _studies(url)]
    # Both trials were running: both queued again, with no step of their run kept.
    assert curve_steps(url, study_id) == {0: [], 1: []}
    result = hpsearch.optimize(study_id, fast, db=db)
    assert [t["state"] for t in result.trials] == ["complete"] * 4
    assert curve_steps(url, study_id) == {n: [1] for n in range(4)}


def _studies(url: str) -> list[Any]:
    from hpsearch.db.models import Study

    with session_scope(url) as session:
        return list(session.query(Study).all())


STUBBORN = """
import sys, time
import hpsearch

def stubborn(config, context):
    # Swallows every interruption, as native code that never returns to Python would.
    until = time.monotonic() + 3
    while time.monotonic() < until:
        try:
            time.sleep(0.05)
        except BaseException:
            pass
    return {"loss": 1.0}

def sleeps(config, context):
    time.sleep(3600)

study = {"name": "late", "config": {}, "objective": {"metric": "loss", "direction": "minimize"},
         "budget": {"trials": 1, "timeout_s": 0.5}}
for objective in (sleeps, stubborn):
    result = hpsearch.optimize(study, objective, db=sys.argv[1])
    print(result.status, [(t["state"], t["reason"]) for t in result.trials])
"""


def test_a_trainer_that_does_not_stop_is_interrupted_and_never_kills_the_process(
    tmp_path: Path,
) -> None:
    # In a process of its own: a runner that kills its process must not take the tests down.
    env = {**os.environ, "HPSEARCH_HEARTBEAT_S": "0.2", "HPSEARCH_LOST_AFTER_S": "0.5"}
    done = subprocess.run(
        [sys.executable, "-c", STUBBORN, str(tmp_path / "runs.db")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # One interrupted where it sleeps; one that swallowed it trains on to its end, unkilled.
    assert done.stdout.splitlines() == ["timed_out [('failed', 'timeout')]"] * 2


KILLED = """
import pathlib, sys, time
import hpsearch

def objective(config, context):
    if config["x"] == 0.5:  # the third point of the grid
        pathlib.Path(sys.argv[2]).touch()
        time.sleep(3600)
    return {"loss": config["x"]}

study = {"name": "killed", "config": {}, "objective": {"metric": "loss", "direction": "minimize"},
         "space": {"x": {"type": "float", "low": 0, "high": 1, "values": [0, 0.25, 0.5, 0.75, 1]}},
         "strategy": {"type": "grid"}, "budget": {"trials": 5}}
hpsearch.optimize(study, objective, db=sys.argv[1])
"""


def test_a_study_whose_process_was_killed_continues_and_retries_its_trial(
    tmp_path: Path,
) -> None:
    db, started = tmp_path / "runs.db", tmp_path / "started"
    process = subprocess.Popen([sys.executable, "-c", KILLED, str(db), str(started)])
    try:
        while not started.exists():
            assert process.poll() is None, "the run ended before its third trial"
            threading.Event().wait(0.1)
        with pytest.raises(
            hpsearch.StudyError, match=f"still running, in process .+:{process.pid}"
        ):
            hpsearch.optimize(1, paraboloid, db=db)  # while it runs, nothing runs twice
    finally:
        process.kill()
        process.wait()

    def objective(config: dict[str, Any], context: Context) -> dict[str, float]:
        return {"loss": config["x"]}

    result = hpsearch.optimize(1, objective, db=db)
    ends = [(t["params"]["x"], t["state"], t["reason"]) for t in result.trials]
    assert result.status == "complete"
    # The grid's five points, each complete once; the killed run's trial lost, then retried.
    assert sorted(e for e in ends if e[1] == "complete") == [
        (x, "complete", None) for x in (0, 0.25, 0.5, 0.75, 1)
    ]
    assert [e for e in ends if e[1] != "complete"] == [(0.5, "failed", "lost")]
