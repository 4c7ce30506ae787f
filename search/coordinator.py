"""The coordinator: turns a study's results into its next trials. The only part of `search/`
that touches the database.

Every decision is taken holding the study's lock, so that two workers finishing at once never
queue more than `parallelism` trials, never exceed the budget and never claim one grid point
twice. Trials are handed to the dispatcher only after the transaction that queued them commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from hpsearch.db import queries
from hpsearch.db.models import FINISHED_STATES, Study, StudyStatus, utcnow
from hpsearch.db.session import lock_study, session_scope
from hpsearch.search.definition import StudyDefinition
from hpsearch.search.strategies.base import TrialRecord

log = logging.getLogger(__name__)

Dispatch = Callable[[Sequence[int]], None]

FINISHED = tuple(state.value for state in FINISHED_STATES)

# Studies this process refilled lately, least recently used first.
MAX_WARM_STUDIES = 64
_WARM: dict[tuple[str, int, str], _WarmStudy] = {}


def create_study(
    session: Session,
    *,
    team_id: int,
    definition: StudyDefinition,
    created_by: int | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> Study:
    """Store a new running study, its `history` as its first trials (complete, imported);
    `queue_next` in the same transaction queues the trials to run (or `refill`, after a
    commit).

    The stored definition leaves the history out: the trials hold it, and the definition is
    read whenever a process warms the study up."""
    timeout_s = definition.budget.timeout_s
    study = Study(
        deadline_at=utcnow() + timedelta(seconds=timeout_s) if timeout_s else None,
        team_id=team_id,
        name=definition.name,
        trainer=definition.trainer,
        runs_on=definition.runs_on,
        tags=list(definition.tags),
        definition=definition.model_dump(mode="json", exclude={"history"}),
        budget_trials=definition.budget.trials,
        parallelism=definition.budget.parallelism,
        created_by=created_by,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    session.add(study)
    session.flush()
    metrics = [o.metric for o in definition.objectives]
    queries.add_imported_trials(
        session,
        study.id,
        [(t.params, dict(zip(metrics, t.values, strict=True))) for t in definition.history],
    )
    return study


CANCELLED_REASON = "cancelled"
RESUMABLE = (StudyStatus.CANCELLED, StudyStatus.TIMED_OUT)


def cancel_study(session: Session, study_id: int) -> bool:
    """Stop a running study: no more trials are queued, queued ones end `failed: cancelled`,
    running ones stop at their next report. False when the study was not running."""
    study = lock_study(session, study_id)
    if study is None or study.status != StudyStatus.RUNNING:
        return False
    queries.end_study(session, study, StudyStatus.CANCELLED)
    queries.fail_queued_trials(session, study_id, CANCELLED_REASON)
    return True


def interrupt_study(session: Session, study_id: int) -> int:
    """After the embedded runner stopped every process of a running study (Ctrl-C): end it as
    cancelled with its running trials queued again, so that `resume_study` runs them as they
    were. The number of trials queued again."""
    study = lock_study(session, study_id)
    if study is None or study.status != StudyStatus.RUNNING:
        return 0
    queries.end_study(session, study, StudyStatus.CANCELLED)
    return len(queries.requeue_running(session, study_id))


def resume_study(session: Session, study_id: int) -> list[int]:
    """Run a cancelled or timed-out study again up to its budget; the trials to dispatch once
    the caller commits (those it queues, and those an interruption left queued). Raises
    ValueError when the study is in another state."""
    study = lock_study(session, study_id)
    if study is None or study.status not in RESUMABLE:
        status = study.status.value if study else "gone"
        raise ValueError(f"status: only a cancelled or timed-out study resumes, not {status}")
    study.status = StudyStatus.RUNNING
    study.finished_at = None
    timeout_s = _warm(session, study).definition.budget.timeout_s
    study.deadline_at = utcnow() + timedelta(seconds=timeout_s) if timeout_s else None
    _queue_next(session, study)
    return queries.queued_trials(session, study_id)


def refill(study_id: int, *, dispatch: Dispatch, url: str | None = None) -> list[int]:
    """Queue trials up to the study's parallelism and budget, commit, then dispatch them."""
    with session_scope(url) as session:
        trial_ids = queue_next(session, study_id)
    if trial_ids:
        dispatch(trial_ids)
    return trial_ids


def queue_next(session: Session, study_id: int) -> list[int]:
    """In the caller's transaction, under the study's lock: queue trials up to the study's
    parallelism and budget and return their ids, to dispatch once the transaction commits.

    Called when a study starts and whenever one of its trials ends. Ends the study when its
    budget is spent, or when the strategy has nothing left and nothing is in flight.
    """
    study = lock_study(session, study_id)
    if study is None or study.status != StudyStatus.RUNNING:
        return []
    return _queue_next(session, study)


TIMEOUT_REASON = "timeout"


def _queue_next(session: Session, study: Study) -> list[int]:
    if study.deadline_at is not None and utcnow() >= study.deadline_at:
        log.info("study %s: out of time; ending it", study.id)
        queries.end_study(session, study, StudyStatus.TIMED_OUT)
        queries.fail_queued_trials(session, study.id, TIMEOUT_REASON)
        return []
    warm = _warm(session, study)
    history = warm.sync(session, study.id)
    # Shown before the budget check: a study's last results decide its strategy's result.
    _show_strategy(study, warm, history)
    # The open trials are exactly those not finished (see `sync`): no scan of the history,
    # which would make each refill cost grow with the study.
    in_flight = len(warm.open)
    finished = len(history) - in_flight - warm.imported
    # A lost trial that runs again is replaced by its retry, which takes its place in the
    # budget: a crash costs the study no configuration (a grid keeps every point).
    finished -= len(warm.retried) + len(warm.retries_due())
    if finished >= study.budget_trials:
        queries.end_study(session, study, StudyStatus.COMPLETE)
        return []
    room = min(
        study.parallelism - in_flight,
        study.budget_trials - finished - in_flight,
    )
    if room <= 0:
        return []
    proposals = warm.propose(history, room)
    if not proposals and in_flight == 0:
        log.info("study %s: the strategy has no more configurations; ending it", study.id)
        queries.end_study(session, study, StudyStatus.COMPLETE)
        return []
    return queries.queue_trials(
        session,
        [
            {
                "study_id": study.id,
                "number": len(history) + i,
                "params": p.params,
                "grid_index": p.grid_index,
                "retry_of": p.retry_of,
                "attempt": p.attempt,
                "lineage": p.lineage,
            }
            for i, p in enumerate(proposals)
        ],
    )


def _show_strategy(study: Study, warm: _WarmStudy, history: list[TrialRecord]) -> None:
    shown = warm.strategy.describe(warm.space, history)
    if shown != study.strategy_state:
        study.strategy_state = shown


class _WarmStudy:
    """What this process keeps of a study between refills: its parsed definition, its
    strategy (Optuna's samplers learn incrementally) and its trial history.

    A finished trial never changes again, so each refill reads only the trials inserted since
    the last one and those that were still queued or running: the cost of a refill does not
    grow with the study.
    """

    def __init__(self, definition: StudyDefinition) -> None:
        self.definition = definition
        self.space = definition.search_space()
        self.strategy = definition.make_strategy()
        self.metrics = [o.metric for o in definition.objectives]
        self.max_retries = definition.budget.max_retries
        self.history: list[TrialRecord] = []
        self.ids: list[int] = []  # trial id of each history entry, by number
        self.open: dict[int, int] = {}  # trial id -> number, for trials not finished when read
        self.lost: dict[int, Row[Any]] = {}  # lost trials' rows, whose config may run again
        self.retried: set[int] = set()  # ids of lost trials that did run again
        self.imported = 0  # trials brought in with the study: never run, not in the budget

    def sync(self, session: Session, study_id: int) -> list[TrialRecord]:
        """The history brought up to date with the database (the study's lock is held)."""
        after = self.ids[-1] if self.ids else 0
        for trial in queries.trials_since(session, study_id, after, list(self.open)):
            record = _record(trial, self.metrics)
            if trial.number == len(self.history):
                self.history.append(record)
                self.ids.append(trial.id)
            else:
                self.history[trial.number] = record
            if record.state in FINISHED:
                self.open.pop(trial.id, None)
            else:
                self.open[trial.id] = trial.number
            if trial.retry_of is not None:
                self.retried.add(trial.retry_of)
            if trial.reason == queries.IMPORTED_REASON:
                self.imported += 1
            if trial.reason == queries.LOST_REASON and trial.attempt <= self.max_retries:
                self.lost[trial.id] = trial
        return self.history

    def retries_due(self) -> list[Row[Any]]:
        """Lost trials whose config is still to run again."""
        return [t for t_id, t in self.lost.items() if t_id not in self.retried]

    def propose(self, history: list[TrialRecord], room: int) -> list[_Planned]:
        """Up to `room` configurations: lost trials' again first, then enqueued ones, then the
        strategy's."""
        again = [
            _Planned(t.params, None, retry_of=t.id, attempt=t.attempt + 1, lineage=t.lineage)
            for t in self.retries_due()
        ][:room]
        enqueued = self.definition.enqueue[len(history) - len(self.retried) - self.imported :]
        warm = again + [_Planned(c) for c in enqueued[: room - len(again)]]
        planned = [
            TrialRecord(len(history) + i, p.params, "queued", lineage=p.lineage)
            for i, p in enumerate(warm)
        ]
        asked = self.strategy.ask(self.space, history + planned, room - len(warm))
        return warm + [_Planned(p.params, p.grid_index, lineage=p.lineage) for p in asked]


@dataclass(frozen=True)
class _Planned:
    """A trial about to be queued: a strategy's proposal, or a lost trial's config again."""

    params: dict[str, Any]
    grid_index: int | None = None
    retry_of: int | None = None
    attempt: int = 1
    lineage: dict[str, Any] | None = None


def _warm(session: Session, study: Study) -> _WarmStudy:
    """The study's warm state in this process, made on first use.

    Keyed by database and creation time too: one process may serve several databases, and a
    recreated database reuses study ids.
    """
    key = (str(session.get_bind().url), study.id, str(study.created_at))
    warm = _WARM.pop(key, None)
    if warm is None:
        if len(_WARM) >= MAX_WARM_STUDIES:
            _WARM.pop(next(iter(_WARM)))
        warm = _WarmStudy(StudyDefinition.model_validate(study.definition))
    _WARM[key] = warm  # most recently used last
    return warm


# The reasons a trial fails for that say nothing of its config.
INTERRUPTIONS = (queries.LOST_REASON, CANCELLED_REASON, TIMEOUT_REASON)


def _record(trial: Row[Any], metrics: list[str]) -> TrialRecord:
    values = None
    if trial.values is not None and all(trial.values.get(m) is not None for m in metrics):
        values = tuple(float(trial.values[m]) for m in metrics)
    return TrialRecord(
        number=trial.number,
        params=trial.params,
        state=trial.state.value,
        values=values,
        grid_index=trial.grid_index,
        interrupted=trial.reason in INTERRUPTIONS,
        lineage=trial.lineage,
    )
