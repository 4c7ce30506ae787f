"""Query functions: each takes a session and never opens one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Row,
    Select,
    String,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, undefer
from sqlalchemy.sql.expression import Executable

from hpsearch.db.models import (
    FINISHED_STATES,
    IN_FLIGHT_STATES,
    Study,
    StudyStatus,
    Team,
    Trial,
    TrialMetric,
    TrialState,
    utcnow,
)

LOCAL_TEAM = "local"
# The reason a trial whose worker stopped heartbeating ends with.
LOST_REASON = "lost"
# The reason of a complete trial that ran elsewhere and came in with its study (its `history`):
# not counted in the budget, nor in the finished trials the progress shows.
IMPORTED_REASON = "imported"
_RUN_HERE = (Trial.reason != IMPORTED_REASON) | Trial.reason.is_(None)


def ensure_team(session: Session, name: str = LOCAL_TEAM) -> int:
    """The id of team `name`, created if missing (the embedded mode's single team)."""
    team_id = session.scalar(select(Team.id).where(Team.name == name))
    if team_id is None:
        team = Team(name=name)
        session.add(team)
        session.flush()
        team_id = team.id
    return team_id


@dataclass(frozen=True)
class Progress:
    finished: int
    """Finished trials as the budget counts them: a lost trial that ran again is not one."""
    in_flight: int
    by_state: dict[str, int]
    last_finished_at: datetime | None
    imported: int = 0
    """Complete trials brought in with the study (in `by_state`, not in `finished`)."""


def study_progress(session: Session, study_id: int) -> Progress:
    """How many of a study's trials are in each state, and when the last one run here ended."""
    imported = func.count(case((~_RUN_HERE, 1)))
    rows = session.execute(
        select(
            Trial.state,
            func.count(),
            func.max(case((_RUN_HERE, Trial.finished_at))),
            func.count(Trial.retry_of),
            imported,
        )
        .where(Trial.study_id == study_id)
        .group_by(Trial.state)
    ).all()
    by_state = {TrialState(state).value: count for state, count, *_ in rows}
    ends = [end for _, _, end, *_ in rows if end is not None]
    finished = sum(by_state.get(s.value, 0) for s in FINISHED_STATES)
    brought = sum(n for *_, n in rows)
    return Progress(
        finished=finished - sum(retries for *_, retries, _ in rows) - brought,
        in_flight=sum(by_state.get(s.value, 0) for s in IN_FLIGHT_STATES),
        by_state=by_state,
        last_finished_at=max(ends, default=None),
        imported=brought,
    )


def best_trial(session: Session, study_id: int, direction: str) -> Trial | None:
    """The complete trial with the best objective value (ties: the earliest)."""
    order = Trial.value.asc() if direction == "minimize" else Trial.value.desc()
    return session.scalars(
        select(Trial)
        .where(Trial.study_id == study_id, Trial.state == TrialState.COMPLETE)
        .where(Trial.value.is_not(None))
        .order_by(order, Trial.number)
        .limit(1)
    ).first()


def trials_of(session: Session, study_id: int) -> Sequence[Trial]:
    """All trials of a study in number order."""
    return session.scalars(
        select(Trial).where(Trial.study_id == study_id).order_by(Trial.number)
    ).all()


def latest_complete_trials(session: Session, study_id: int, limit: int) -> list[Trial]:
    """A study's `limit` complete trials of the highest numbers, in number order."""
    rows = session.scalars(
        select(Trial)
        .where(Trial.study_id == study_id, Trial.state == TrialState.COMPLETE)
        .order_by(Trial.number.desc())
        .limit(limit)
    ).all()
    return sorted(rows, key=lambda t: t.number)


def trials_since(
    session: Session, study_id: int, after: int, open_ids: Sequence[int]
) -> Sequence[Row[Any]]:
    """A study's trials inserted after id `after`, and those of `open_ids`, by number: rows
    of the columns the coordinator reads (`_SINCE`)."""
    return session.execute(
        _SINCE, {"study": study_id, "after": after, "open": list(open_ids)}
    ).all()


def trial_by_number(session: Session, study_id: int, number: int) -> Trial | None:
    """A study's trial number `number`, with its traceback (deferred in listings)."""
    return session.scalars(
        select(Trial)
        .where(Trial.study_id == study_id, Trial.number == number)
        .options(undefer(Trial.traceback))
    ).one_or_none()


def trials_after(session: Session, study_id: int, after: int, limit: int) -> Sequence[Trial]:
    """Up to `limit` of a study's trials numbered after `after`, in number order (the order
    they were queued in)."""
    return session.scalars(
        select(Trial)
        .where(Trial.study_id == study_id, Trial.number > after)
        .order_by(Trial.number)
        .limit(limit)
    ).all()


@dataclass(frozen=True)
class StudyFilter:
    """Which studies a listing shows: always only those of `team_ids`."""

    team_ids: Sequence[int]
    status: StudyStatus | None = None
    name: str | None = None
    tag: str | None = None

    def where(self, statement: Select) -> Select:
        statement = statement.where(Study.team_id.in_(self.team_ids))
        if self.status is not None:
            statement = statement.where(Study.status == self.status)
        if self.name:
            statement = statement.where(Study.name.contains(self.name, autoescape=True))
        if self.tag:
            # Tags are a JSON list; its text holds each tag quoted, on SQLite and PostgreSQL.
            tags = cast(Study.tags, String)
            statement = statement.where(tags.contains(f'"{self.tag}"', autoescape=True))
        return statement


def list_studies(
    session: Session, studies: StudyFilter, limit: int, offset: int
) -> Sequence[Study]:
    """The studies the filter selects, newest first."""
    statement = select(Study).order_by(Study.id.desc())
    return session.scalars(studies.where(statement).limit(limit).offset(offset)).all()


@dataclass(frozen=True)
class Tally:
    """A study's finished trials and the range of its complete trials' values."""

    finished: int = 0  # as the budget counts them (see Progress)
    lowest: float | None = None
    highest: float | None = None


def tallies(session: Session, study_ids: Sequence[int]) -> dict[int, Tally]:
    """Study id -> its tally, for a page of studies in one statement (a list is polled)."""
    complete_value = case((Trial.state == TrialState.COMPLETE, Trial.value))
    rows = session.execute(
        select(
            Trial.study_id,
            func.sum(case((Trial.state.in_(FINISHED_STATES) & _RUN_HERE, 1), else_=0))
            - func.count(Trial.retry_of),
            func.min(complete_value),
            func.max(complete_value),
        )
        .where(Trial.study_id.in_(study_ids))
        .group_by(Trial.study_id)
    ).all()
    return {study_id: Tally(int(n or 0), lo, hi) for study_id, n, lo, hi in rows}


def count_studies(session: Session, studies: StudyFilter) -> int:
    """How many studies the filter selects."""
    return session.scalar(studies.where(select(func.count(Study.id)))) or 0


def get_study(session: Session, study_id: int) -> Study | None:
    """A study by id, whatever its team: the caller checks who may see it."""
    return session.get(Study, study_id)


def study_by_key(session: Session, team_id: int, key: str) -> Study | None:
    """The team's study created with this Idempotency-Key."""
    return session.scalars(
        select(Study).where(Study.team_id == team_id, Study.idempotency_key == key)
    ).one_or_none()


# The statements every trial runs (claim, curve, end, the coordinator's reads and inserts)
# are built once, on the tables rather than the mapped classes, with bound parameters: building
# a statement and its cache key per call, and the ORM's unit of work and bulk-DML machinery,
# cost more than the SQL itself (bench/overhead.py).
_trials = Trial.__table__
_metrics = TrialMetric.__table__
_t = _trials.c

_SINCE = (
    select(
        _t.id,
        _t.number,
        _t.params,
        _t.state,
        _t["values"],
        _t.grid_index,
        _t.retry_of,
        _t.reason,
        _t.attempt,
        _t.lineage,
    )
    .where(
        _t.study_id == bindparam("study"),
        (_t.id > bindparam("after")) | _t.id.in_(bindparam("open", expanding=True)),
    )
    .order_by(_t.number)
)
_CLAIM = (
    update(_trials)
    .where(_t.id == bindparam("trial"), _t.state == TrialState.QUEUED)
    .values(
        state=TrialState.RUNNING,
        worker=bindparam("worker_name"),
        started_at=bindparam("now", type_=_t.started_at.type),
        heartbeat_at=bindparam("now", type_=_t.heartbeat_at.type),
    )
    .returning(
        _t.study_id,
        _t.number,
        _t.params,
        select(Study.created_at).where(Study.id == _t.study_id).scalar_subquery(),
        _t.retry_of,
        _t.lineage,
    )
)
_FINISH = (
    update(_trials)
    .where(_t.id == bindparam("trial"), _t.state == TrialState.RUNNING)
    .values(
        state=bindparam("new_state", type_=_t.state.type),
        reason=bindparam("new_reason", type_=_t.reason.type),
        traceback=bindparam("new_traceback", type_=_t.traceback.type),
        values=bindparam("new_values", type_=_t["values"].type),
        value=bindparam("new_value", type_=_t.value.type),
        finished_at=bindparam("now", type_=_t.finished_at.type),
    )
)


@cache
def _add_metrics(dialect: str) -> Executable:
    """The insert of metrics for `dialect`, built once. A step already stored is kept as it is:
    a writer that retries a batch whose answer it lost (an agent re-sending a report, a worker
    retrying a transaction) stores each step once. Each dialect's module loads where it is
    used (PostgreSQL's, with its asyncio driver, cost every embedded run a few hundredths)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as insert_of
    else:
        from sqlalchemy.dialects.sqlite import insert as insert_of
    return insert_of(_metrics).on_conflict_do_nothing(index_elements=["trial_id", "step"])


_QUEUE = insert(_trials).returning(_t.id, sort_by_parameter_order=True)


# State changes are single-row UPDATEs whose rows no session holds: matching them against the
# identity map (SQLAlchemy's default) costs more than the statement.
_UNSYNCED = {"synchronize_session": False}


@dataclass(frozen=True)
class Claimed:
    """What a worker needs of the trial it has just claimed."""

    study_id: int
    number: int
    params: dict[str, Any]
    # With the id, what tells this study from an earlier one of the same id: SQLite gives a
    # deleted study's id to the next one, and a worker caches what it read by study.
    study_created_at: datetime
    retry_of: int | None  # the lost trial this one runs again, whose checkpoint it resumes
    lineage: dict[str, Any] | None  # population-based training: whose state it starts from


def claim_trial(session: Session, trial_id: int, worker: str) -> Claimed | None:
    """Move a queued trial to running for `worker`; None when someone else already has."""
    row = session.execute(
        _CLAIM, {"trial": trial_id, "worker_name": worker, "now": utcnow()}
    ).one_or_none()
    return Claimed(*row) if row is not None else None


def lease_trial(
    session: Session, study_id: int, worker: str, tries: int = 8
) -> tuple[int, Claimed] | None:
    """Claim a study's oldest queued trial for `worker` (an agent), as `claim_trial` does for
    a worker: another agent, or a worker sent the same trial, wins or loses it whole. Tries
    the next one when another claimed it first; None when none of `tries` could be had."""
    queued = session.scalars(
        select(Trial.id)
        .where(Trial.study_id == study_id, Trial.state == TrialState.QUEUED)
        .order_by(Trial.id)
        .limit(tries)
    ).all()
    for trial_id in queued:
        claimed = claim_trial(session, trial_id, worker)
        if claimed is not None:
            return trial_id, claimed
    return None


def has_live_trial(session: Session, study_id: int, since: datetime) -> bool:
    """Whether a trial of the study runs with a heartbeat since `since`: something (a worker
    or an agent) is running its trials."""
    found = session.execute(
        select(Trial.id)
        .where(Trial.study_id == study_id, Trial.state == TrialState.RUNNING)
        .where(Trial.heartbeat_at >= since)
        .limit(1)
    ).first()
    return found is not None


def heartbeat(session: Session, trial_id: int, study_id: int) -> StudyStatus | None:
    """Mark a running trial as alive now; its study's status, as `study_status` gives it."""
    session.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.state == TrialState.RUNNING)
        .values(heartbeat_at=utcnow()),
        execution_options=_UNSYNCED,
    )
    return study_status(session, study_id)


def add_metrics(session: Session, trial_id: int, reports: Sequence[tuple[int, dict]]) -> None:
    """Append per-step metrics of a trial; a step it has already is left as stored (unique by
    trial and step), so that writing the same reports again changes nothing."""
    if reports:
        session.execute(
            _add_metrics(session.get_bind().dialect.name),
            [{"trial_id": trial_id, "step": s, "metrics": m} for s, m in reports],
        )


def queue_trials(session: Session, trials: Sequence[dict[str, Any]]) -> list[int]:
    """Insert queued trials (each a dict of study_id, number, params, grid_index, retry_of,
    attempt, lineage); their ids, in the same order."""
    if not trials:
        return []
    return list(session.scalars(_QUEUE, list(trials)))


def add_imported_trials(
    session: Session, study_id: int, trials: Sequence[tuple[dict[str, Any], dict[str, float]]]
) -> None:
    """Store (params, values by metric) pairs as a new study's first trials, complete and
    marked imported; `value` is the first metric's (the dict's first key)."""
    now = utcnow()
    rows = [
        {
            "study_id": study_id,
            "number": number,
            "params": params,
            "state": TrialState.COMPLETE,
            "reason": IMPORTED_REASON,
            "values": values,
            "value": next(iter(values.values())),
            "queued_at": now,
            "started_at": now,
            "finished_at": now,
        }
        for number, (params, values) in enumerate(trials)
    ]
    if rows:
        session.execute(insert(_trials), rows)


def study_metrics(session: Session, study_id: int, after: int, limit: int) -> Sequence[Row[Any]]:
    """Up to `limit` reports (id, trial number, step, metrics) of a study's trials stored
    after the report with id `after`, in storage order: every curve, a page at a time."""
    return session.execute(
        select(TrialMetric.id, Trial.number, TrialMetric.step, TrialMetric.metrics)
        .join(Trial, Trial.id == TrialMetric.trial_id)
        .where(Trial.study_id == study_id, TrialMetric.id > after)
        .order_by(TrialMetric.id)
        .limit(limit)
    ).all()


def metrics_of(session: Session, trial_id: int) -> Sequence[TrialMetric]:
    """A trial's learning curve in step order."""
    return session.scalars(
        select(TrialMetric).where(TrialMetric.trial_id == trial_id).order_by(TrialMetric.step)
    ).all()


def objective_curves(
    session: Session, study_id: int, metric: str, states: Sequence[TrialState]
) -> dict[int, dict[int, float]]:
    """Trial number -> {step: value of `metric`} for a study's trials in `states`."""
    rows = session.execute(
        select(Trial.number, TrialMetric.step, TrialMetric.metrics)
        .join(TrialMetric, TrialMetric.trial_id == Trial.id)
        .where(Trial.study_id == study_id, Trial.state.in_(states))
    ).all()
    curves: dict[int, dict[int, float]] = {}
    for number, step, metrics in rows:
        if metrics.get(metric) is not None:
            curves.setdefault(number, {})[step] = float(metrics[metric])
    return curves


def finish_trial(
    session: Session,
    trial_id: int,
    state: TrialState,
    *,
    reason: str | None = None,
    values: dict[str, Any] | None = None,
    value: float | None = None,
    traceback: str | None = None,
) -> bool:
    """End a running trial in one terminal state, with the traceback of the exception that
    ended it if one did; False if it was not running any more."""
    result = session.execute(
        _FINISH,
        {
            "trial": trial_id,
            "new_state": state,
            "new_reason": reason,
            "new_traceback": traceback,
            "new_values": values,
            "new_value": value,
            "now": utcnow(),
        },
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def fail_queued_trials(session: Session, study_id: int, reason: str) -> None:
    """End a study's trials that no worker has claimed yet as failed, for `reason`."""
    session.execute(
        update(Trial)
        .where(Trial.study_id == study_id, Trial.state == TrialState.QUEUED)
        .values(state=TrialState.FAILED, reason=reason, finished_at=utcnow()),
        execution_options=_UNSYNCED,
    )


def mark_lost(
    session: Session,
    silent_since: datetime | None = None,
    workers: Sequence[str] = (),
    study_id: int | None = None,
) -> list[int]:
    """End as `failed: lost` the running trials whose last heartbeat is older than
    `silent_since`, and those of `workers` (processes known to be dead); their studies' ids.
    With `study_id`, only that study's trials."""
    lost = Trial.worker.in_(workers)
    if silent_since is not None:
        lost = or_(lost, Trial.heartbeat_at < silent_since)
    if study_id is not None:
        lost = (Trial.study_id == study_id) & lost
    rows = session.execute(
        update(Trial)
        .where(Trial.state == TrialState.RUNNING, lost)
        .values(state=TrialState.FAILED, reason=LOST_REASON, finished_at=utcnow())
        .returning(Trial.study_id),
        execution_options=_UNSYNCED,
    ).all()
    return sorted({study_id for (study_id,) in rows})


def requeue_running(session: Session, study_id: int, worker: str | None = None) -> list[int]:
    """Put a study's running trials (those of `worker`, if given) back in the queue with their
    partial learning curves dropped, for a study whose workers were stopped on purpose (Ctrl-C
    in `hpsearch run`, or in `hpsearch agent`): they run again as the same trials, costing no
    retry and no budget."""
    running = (Trial.study_id == study_id) & (Trial.state == TrialState.RUNNING)
    if worker is not None:
        running &= Trial.worker == worker
    ids = list(
        session.scalars(
            update(Trial)
            .where(running)
            .values(
                state=TrialState.QUEUED,
                worker=None,
                started_at=None,
                heartbeat_at=None,
                queued_at=utcnow(),
            )
            .returning(Trial.id),
            execution_options=_UNSYNCED,
        )
    )
    if ids:
        session.execute(
            delete(TrialMetric).where(TrialMetric.trial_id.in_(ids)), execution_options=_UNSYNCED
        )
    return sorted(ids)


def running_workers(session: Session, study_id: int) -> list[str]:
    """The workers (`host:pid`) running a study's trials now, as they recorded themselves."""
    statement = select(Trial.worker).where(
        Trial.study_id == study_id, Trial.state == TrialState.RUNNING
    )
    return sorted({worker or "" for worker in session.scalars(statement)})


def queued_trials(session: Session, study_id: int) -> list[int]:
    """A study's queued trials."""
    statement = select(Trial.id).where(Trial.study_id == study_id, Trial.state == TrialState.QUEUED)
    return sorted(session.scalars(statement))


def requeue_stale(session: Session, queued_before: datetime) -> list[int]:
    """Queued trials of running studies that no worker took since `queued_before`, their
    queue time renewed so that each is dispatched again at most once per period."""
    running = select(Study.id).where(Study.status == StudyStatus.RUNNING)
    rows = session.execute(
        update(Trial)
        .where(Trial.state == TrialState.QUEUED, Trial.queued_at < queued_before)
        .where(Trial.study_id.in_(running))
        .values(queued_at=utcnow())
        .returning(Trial.id),
        execution_options=_UNSYNCED,
    ).all()
    return sorted(trial_id for (trial_id,) in rows)


def mark_unsent(session: Session, trial_ids: Sequence[int], queued_at: datetime) -> None:
    """Queued trials whose message never reached the broker, given the queue time `queued_at`
    (one past the re-send cut-off) so that the next re-send of stale trials sends them."""
    session.execute(
        update(Trial)
        .where(Trial.id.in_(trial_ids), Trial.state == TrialState.QUEUED)
        .values(queued_at=queued_at),
        execution_options=_UNSYNCED,
    )


def trainers_of(session: Session, trial_ids: Sequence[int]) -> dict[int, str]:
    """The trainer of each trial's study, by trial id, for those trials workers may run: where
    each is to be sent. A trial of a study run by agents alone (`runs_on: agents`) is left
    out: it waits for an agent's lease."""
    rows = session.execute(
        select(Trial.id, Study.trainer)
        .join(Study, Study.id == Trial.study_id)
        .where(Trial.id.in_(trial_ids), Study.runs_on != "agents")
    )
    return dict(rows.all())


def expired_studies(session: Session, now: datetime) -> list[int]:
    """Running studies past their deadline."""
    return list(
        session.scalars(
            select(Study.id).where(Study.status == StudyStatus.RUNNING, Study.deadline_at < now)
        )
    )


def study_status(session: Session, study_id: int) -> StudyStatus | None:
    """A study's status; None once it is deleted. A running study past its deadline is
    `timed_out` already: its trials stop now, not at the sweep that records it."""
    row = session.execute(
        select(Study.status, Study.deadline_at < utcnow()).where(Study.id == study_id)
    ).first()
    if row is None:
        return None
    status, expired = row
    return StudyStatus.TIMED_OUT if status == StudyStatus.RUNNING and expired else status


def end_study(session: Session, study: Study, status: StudyStatus) -> None:
    """Give a study its final status."""
    study.status = status
    study.finished_at = utcnow()
