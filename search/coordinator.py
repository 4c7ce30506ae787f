"""The coordinator: turns a study's results into its next trials. The only part of `search/`
that touches the database.

Every decision is taken holding the study's lock, so that two workers finishing at once never
queue more than `parallelism` trials, never exceed the budget and never claim one grid point
twice. Trials are handed to the dispatcher only after the transaction that queued them commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from db import queries
from db.models import Study, StudyStatus, Trial
from db.session import lock_study, session_scope
from search.definition import StudyDefinition
from search.strategies.base import Proposal, Strategy, TrialRecord

log = logging.getLogger(__name__)

Dispatch = Callable[[Sequence[int]], None]

# Warm strategies of the studies this process refilled lately, least recently used first.
MAX_WARM_STRATEGIES = 64
_STRATEGIES: dict[tuple[str, int, str], Strategy] = {}


def create_study(session: Session, *, team_id: int, definition: StudyDefinition) -> Study:
    """Store a new running study; `refill` then queues its first trials."""
    study = Study(
        team_id=team_id,
        name=definition.name,
        definition=definition.model_dump(mode="json"),
        budget_trials=definition.budget.trials,
        parallelism=definition.budget.parallelism,
    )
    session.add(study)
    session.flush()
    return study


def refill(study_id: int, *, dispatch: Dispatch, url: str | None = None) -> list[int]:
    """Queue trials up to the study's parallelism and budget, then dispatch them.

    Called when a study starts and whenever one of its trials ends. Ends the study when its
    budget is spent, or when the strategy has nothing left and nothing is in flight.
    """
    with session_scope(url) as session:
        study = lock_study(session, study_id)
        if study is None or study.status != StudyStatus.RUNNING:
            return []
        trial_ids = _queue_next(session, study)
    if trial_ids:
        dispatch(trial_ids)
    return trial_ids


def _queue_next(session: Session, study: Study) -> list[int]:
    definition = StudyDefinition.model_validate(study.definition)
    progress = queries.study_progress(session, study.id)
    if progress.finished >= study.budget_trials:
        queries.end_study(session, study, StudyStatus.COMPLETE)
        return []
    room = min(
        study.parallelism - progress.in_flight,
        study.budget_trials - progress.finished - progress.in_flight,
    )
    if room <= 0:
        return []
    metrics = [o.metric for o in definition.objectives]
    history = [_record(t, metrics) for t in queries.trials_of(session, study.id)]
    space = definition.search_space()
    # Warm-start configurations take the first trial numbers, before the strategy's own.
    warm = [Proposal(config) for config in definition.enqueue[len(history) :][:room]]
    planned = [TrialRecord(len(history) + i, p.params, "queued") for i, p in enumerate(warm)]
    strategy = _strategy(session, study, definition)
    proposals = warm + strategy.ask(space, history + planned, room - len(warm))
    if not proposals and progress.in_flight == 0:
        log.info("study %s: the strategy has no more configurations; ending it", study.id)
        queries.end_study(session, study, StudyStatus.COMPLETE)
        return []
    shown = strategy.describe(space, history)
    if shown != study.strategy_state:
        study.strategy_state = shown
    trials = [
        Trial(study_id=study.id, number=len(history) + i, params=p.params, grid_index=p.grid_index)
        for i, p in enumerate(proposals)
    ]
    session.add_all(trials)
    session.flush()
    return [t.id for t in trials]


def _strategy(session: Session, study: Study, definition: StudyDefinition) -> Strategy:
    """The study's strategy, kept warm in this process (Optuna's samplers learn incrementally).

    Keyed by database and creation time too: one process may serve several databases, and a
    recreated database reuses study ids.
    """
    key = (str(session.get_bind().url), study.id, str(study.created_at))
    if key not in _STRATEGIES:
        if len(_STRATEGIES) >= MAX_WARM_STRATEGIES:
            _STRATEGIES.pop(next(iter(_STRATEGIES)))
        _STRATEGIES[key] = definition.make_strategy()
    _STRATEGIES[key] = _STRATEGIES.pop(key)  # most recently used last
    return _STRATEGIES[key]


def _record(trial: Trial, metrics: list[str]) -> TrialRecord:
    values = None
    if trial.values is not None and all(trial.values.get(m) is not None for m in metrics):
        values = tuple(float(trial.values[m]) for m in metrics)
    return TrialRecord(
        number=trial.number,
        params=trial.params,
        state=trial.state.value,
        values=values,
        grid_index=trial.grid_index,
    )
