from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest

from hpsearch.db import queries
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Study, StudyStatus, Trial, TrialState
from hpsearch.db.session import session_scope
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from tests.conftest import tiny_study


class Recorder:
    def __init__(self) -> None:
        self.sent: list[int] = []

    def __call__(self, trial_ids: Sequence[int]) -> None:
        self.sent += trial_ids


def new_study(url: str, **overrides: object) -> int:
    upgrade(url)
    definition = StudyDefinition.model_validate(tiny_study(**overrides))
    with session_scope(url) as session:
        team_id = queries.ensure_team(session)
        return coordinator.create_study(session, team_id=team_id, definition=definition).id


def finish(
    url: str, trial_ids: Sequence[int], score: Callable[[dict], float] = lambda params: 0.5
) -> None:
    """Run the trials the way a worker would, with `score` as their val_accuracy."""
    with session_scope(url) as session:
        for trial_id in trial_ids:
            claimed = queries.claim_trial(session, trial_id, "test")
            assert claimed is not None
            value = score(claimed.params)
            state = TrialState.FAILED if value != value else TrialState.COMPLETE  # NaN: failed
            values = {"val_accuracy": value} if state == TrialState.COMPLETE else None
            queries.finish_trial(
                session,
                trial_id,
                state,
                values=values,
                value=values and value,
                reason=None if values else "diverged at epoch 1",
            )


def finish_queued(
    url: str, study_id: int, score: Callable[[dict], float] = lambda params: 0.5
) -> None:
    with session_scope(url) as session:
        queued = [t.id for t in queries.trials_of(session, study_id) if t.state == "queued"]
    finish(url, queued, score)


def run_to_end(url: str, study_id: int, score: Callable[[dict], float]) -> list[Trial]:
    dispatch = Recorder()
    coordinator.refill(study_id, dispatch=dispatch, url=url)
    while status(url, study_id) == StudyStatus.RUNNING:
        finish_queued(url, study_id, score)
        coordinator.refill(study_id, dispatch=dispatch, url=url)
    with session_scope(url) as session:
        return list(queries.trials_of(session, study_id))


def status(url: str, study_id: int) -> StudyStatus:
    with session_scope(url) as session:
        return session.get_one(Study, study_id).status


def test_refill_keeps_parallelism_in_flight_and_stops_at_the_budget(sqlite_url: str) -> None:
    study_id = new_study(sqlite_url, budget={"trials": 5, "parallelism": 2})
    dispatch = Recorder()
    first = coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url)
    assert len(first) == 2
    assert coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url) == []
    finish(sqlite_url, first[:1])
    assert len(coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url)) == 1
    while status(sqlite_url, study_id) == StudyStatus.RUNNING:
        finish_queued(sqlite_url, study_id)
        coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url)
    assert len(dispatch.sent) == 5 == len(set(dispatch.sent))
    with session_scope(sqlite_url) as session:
        assert queries.study_progress(session, study_id).by_state == {"complete": 5}


def test_an_exhausted_grid_ends_the_study_before_the_budget(sqlite_url: str) -> None:
    space = {"model.activation": {"type": "categorical", "choices": ["relu", "tanh", "sigmoid"]}}
    study_id = new_study(
        sqlite_url,
        model={"type": "mlp", "hidden": [4]},
        space=space,
        strategy={"type": "grid"},
        budget={"trials": 10, "parallelism": 2},
    )
    dispatch = Recorder()
    coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url)
    while status(sqlite_url, study_id) == StudyStatus.RUNNING:
        finish_queued(sqlite_url, study_id)
        coordinator.refill(study_id, dispatch=dispatch, url=sqlite_url)
    with session_scope(sqlite_url) as session:
        trials = queries.trials_of(session, study_id)
    assert sorted(t.params["model.activation"] for t in trials) == ["relu", "sigmoid", "tanh"]


LR = "training.learning_rate"


def test_enqueued_configs_run_first_and_count_in_the_budget(sqlite_url: str) -> None:
    enqueue = [{LR: 0.123}, {LR: 0.0456}]
    study_id = new_study(sqlite_url, enqueue=enqueue, budget={"trials": 5, "parallelism": 3})
    trials = run_to_end(sqlite_url, study_id, lambda p: 0.5)
    assert len(trials) == 5
    assert [t.params for t in trials[:2]] == enqueue
    assert all(t.params not in enqueue for t in trials[2:])


def test_coarse_to_fine_rounds_are_stored_with_the_study_with_their_epochs(
    sqlite_url: str,
) -> None:
    study_id = new_study(
        sqlite_url,
        strategy={"type": "coarse_to_fine", "rounds": 3, "samples_per_round": 8, "keep": 0.25},
        budget={"trials": 24, "parallelism": 4},
    )
    # best near lr = 0.01: accuracy falls with the distance in decades
    trials = run_to_end(sqlite_url, study_id, lambda p: -abs(math.log10(p[LR]) + 2))
    with session_scope(sqlite_url) as session:
        state = session.get_one(Study, study_id).strategy_state
    rounds = state["rounds"]
    # 1/4, 1/2 and all of the study's 5 epochs; a reduced trial carries its epochs.
    assert [r["epochs"] for r in rounds] == [1, 2, 5]
    assert [t.params.get("training.epochs") for t in trials] == [1] * 8 + [2] * 8 + [None] * 8
    boxes = [r["arms"]["all"][LR] for r in rounds]
    widths = [math.log10(b["high"]) - math.log10(b["low"]) for b in boxes]
    assert widths[0] > widths[1] >= widths[2] >= 0.1 * widths[0] * (1 - 1e-9)  # min_width
    best = max(trials[8:16], key=lambda t: t.values["val_accuracy"]).params[LR]
    assert boxes[2]["low"] <= best <= boxes[2]["high"]
    # The result is stored once the last trial has finished: the best of the full rounds.
    assert state["result"]["winner"] == "all"
    assert (
        state["result"]["arms"]["all"]["best_trial"]
        == max(trials[16:], key=lambda t: t.values["val_accuracy"]).number
    )


def test_tpe_study_survives_failed_trials_and_proposes_in_the_space(sqlite_url: str) -> None:
    study_id = new_study(
        sqlite_url,
        strategy={"type": "tpe", "seed": 0, "n_startup_trials": 4},
        budget={"trials": 12, "parallelism": 2},
    )
    # learning rates above 0.1 "diverge"
    trials = run_to_end(sqlite_url, study_id, lambda p: math.nan if p[LR] > 0.1 else p[LR])
    assert len(trials) == 12
    assert all(0.001 <= t.params[LR] <= 0.5 for t in trials)
    assert {t.state for t in trials} <= {"complete", "failed"}


def test_an_interrupted_study_resumes_its_running_trials_as_they_were(sqlite_url: str) -> None:
    study_id = new_study(sqlite_url, budget={"trials": 4, "parallelism": 2})
    first, second = coordinator.refill(study_id, dispatch=Recorder(), url=sqlite_url)
    finish(sqlite_url, [first])
    with session_scope(sqlite_url) as session:  # the second is mid-training when Ctrl-C comes
        assert queries.claim_trial(session, second, "w") is not None
        queries.add_metrics(session, second, [(0, {"val_accuracy": 0.1})])
    with session_scope(sqlite_url) as session:
        assert coordinator.interrupt_study(session, study_id) == 1
    assert status(sqlite_url, study_id) == StudyStatus.CANCELLED
    with session_scope(sqlite_url) as session:
        interrupted = session.get_one(Trial, second)
        assert (interrupted.state, interrupted.worker, interrupted.reason) == ("queued", None, None)
        assert queries.metrics_of(session, second) == []  # its run starts over
        again = coordinator.resume_study(session, study_id)
    # The interrupted trial is sent again, beside one new trial: parallelism 2, nothing lost.
    assert second in again and len(again) == 2 and first not in again
    assert status(sqlite_url, study_id) == StudyStatus.RUNNING


@pytest.mark.parametrize(
    "reason, interrupted",
    [
        ("lost", True),
        ("cancelled", True),
        ("timeout", True),
        ("diverged at step 12: loss is nan", False),
        ("error: invalid config: training.batch_size: too big", False),
    ],
)
def test_only_failures_of_the_config_itself_teach_the_strategy(
    sqlite_url: str, reason: str, interrupted: bool
) -> None:
    study_id = new_study(sqlite_url, budget={"trials": 2, "parallelism": 1})
    (trial_id,) = coordinator.refill(study_id, dispatch=Recorder(), url=sqlite_url)
    with session_scope(sqlite_url) as session:
        assert queries.claim_trial(session, trial_id, "w") is not None
        queries.finish_trial(session, trial_id, TrialState.FAILED, reason=reason)
    with session_scope(sqlite_url) as session:
        study = session.get_one(Study, study_id)
        (record,) = coordinator._warm(session, study).sync(session, study_id)
    assert (record.state, record.interrupted) == ("failed", interrupted)


def test_history_is_stored_complete_and_enqueued_configs_then_the_budget_follow_it(
    sqlite_url: str,
) -> None:
    history = [{"params": {LR: 0.01 * (i + 1)}, "values": [0.1 * i]} for i in range(4)]
    enqueue = [{LR: 0.123}]
    study_id = new_study(
        sqlite_url, history=history, enqueue=enqueue, budget={"trials": 3, "parallelism": 2}
    )
    trials = run_to_end(sqlite_url, study_id, lambda p: 0.5)
    assert len(trials) == 4 + 3  # the budget counts the trials run here only
    assert [(t.params, t.values, t.reason) for t in trials[:4]] == [
        (h["params"], {"val_accuracy": h["values"][0]}, "imported") for h in history
    ]
    assert trials[4].params == enqueue[0]  # enqueued configs still run first of the new ones
    with session_scope(sqlite_url) as session:
        progress = queries.study_progress(session, study_id)
        study = session.get(Study, study_id)
        assert study is not None and "history" not in study.definition  # the trials hold it
    assert (progress.finished, progress.imported) == (3, 4)
