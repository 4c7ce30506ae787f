"""Agents: trials leased over REST to `hpsearch agent` on a user's machine, reported on and
ended there. A lease is the worker's claim (`queries.claim_trial`) with `agent:<name>` as the
worker, renewed by each report: an agent that stops reporting for `lost_after_s` has its trial
ended `failed: lost` and retried, as a dead worker's is. The reports and the end mean what they
mean for a worker's trial (`worker/runner.py`, `worker/outcome.py`)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import jsonschema_rs
from sqlalchemy.orm import Session

from hpsearch.api.errors import Conflict, Invalid, NotFound
from hpsearch.api.schemas import (
    FinishCreate,
    LeasePublic,
    OfferCreate,
    OfferPublic,
    ReportAnswer,
    StepReport,
)
from hpsearch.db import datasets, queries, trainers
from hpsearch.db.models import Study, StudyStatus, Trial, TrialState, utcnow
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.search.trainer_schema import TrainerInfo
from hpsearch.worker.outcome import MESSAGE_CHARS, Outcome, cut
from hpsearch.worker.runner import PruningCheck, definition_of, settle, write_ending

AGENT = "agent:"
# What a dataset is streamed to an agent in: one query each, a few per uploaded file.
DATASET_PART = 1 << 20


@dataclass(frozen=True)
class Lease:
    """What a lease request found: the trial leased (None: none queued now), the study's
    status, and trials queued meanwhile, to dispatch once committed."""

    trial: LeasePublic | None
    status: StudyStatus | None
    dispatch: list[int]


def offer(session: Session, study: Study, body: OfferCreate) -> OfferPublic:
    """Record that an agent of the study's team runs `body.trainer`, for that team alone, as
    a worker's offer is recorded (`db/trainers.py`); renewed by offering again."""
    described = body.trainer.model_dump()
    if body.trainer.declared:
        _check_schema(
            TrainerInfo(
                name=body.trainer.name,
                version=body.trainer.version,
                config_schema=body.trainer.config_schema,
                step_metrics=tuple(body.trainer.step_metrics),
                final_metrics=tuple(body.trainer.final_metrics),
                resumable=body.trainer.resumable,
            )
        )
    # Keyed by team too: two teams' agents of the same name must not replace each other's.
    offerer = f"{AGENT}{study.team_id}/{body.agent}"
    trainers.offer(session, offerer, body.host, [described], utcnow(), team_id=study.team_id)
    settings = get_settings()
    return OfferPublic(heartbeat_s=settings.heartbeat_s, lease_s=settings.lost_after_s)


def _check_schema(trainer: TrainerInfo) -> None:
    """422 unless the offered config schema is one studies can be checked against and the
    Trainers page can list: it comes from a user's machine."""
    try:
        jsonschema_rs.validator_for(trainer.config_schema)
        trainer.settings()
    except Exception as exc:  # whatever a malformed schema breaks in the reading of it
        raise Invalid(
            f"trainer.config_schema: not a usable JSON schema ({cut(str(exc), 200)})",
            "trainer.config_schema",
        ) from None


def lease(session: Session, study: Study, agent: str) -> Lease:
    """Lease the study's oldest queued trial to `agent`.

    First, as a worker's sweeper would, end the study's silent trials as lost (and queue their
    retries), at most once per `sweep_every_s` in this process; and end the study if it is
    past its deadline: a study served by agents alone has no worker to sweep it."""
    if study.runs_on == "workers":
        raise Conflict("runs_on: this study's trials run on workers only, not on agents", "runs_on")
    settings = get_settings()
    lost: list[int] = []
    if _due_for_sweep(session, study.id, settings.sweep_every_s):
        silent_since = utcnow() - timedelta(seconds=settings.lost_after_s)
        lost = queries.mark_lost(session, silent_since, study_id=study.id)
    status = queries.study_status(session, study.id)
    ended_late = status == StudyStatus.TIMED_OUT and study.status == StudyStatus.RUNNING
    queued = coordinator.queue_next(session, study.id) if lost or ended_late else []
    if status != StudyStatus.RUNNING:
        return Lease(None, status, queued)
    found = queries.lease_trial(session, study.id, AGENT + agent)
    if found is None:
        return Lease(None, status, queued)
    _, claimed = found
    definition = definition_of(session, study.id, study.created_at)
    trial = LeasePublic(
        study_id=study.id,
        number=claimed.number,
        params=claimed.params,
        config=definition.trial_document(claimed.params),
        trainer=definition.trainer,
        seed=definition.seed,
        study_created_at=study.created_at,
        heartbeat_s=settings.heartbeat_s,
        lease_s=settings.lost_after_s,
    )
    # Its own trial id is not the agent's business: it is already claimed.
    return Lease(trial, status, [i for i in queued if i != found[0]])


# When this process last looked for a study's lost trials, by database and study: the look is
# an UPDATE over the study's running trials, which many agents polling must not each run.
_SWEPT: dict[tuple[str, int], float] = {}


def _due_for_sweep(session: Session, study_id: int, every_s: float) -> bool:
    """Whether the study's silent trials are to be looked for now (and note that they are).
    Two requests racing here both sweep: harmless, as each sweep is one conditional UPDATE."""
    key = (str(session.get_bind().url), study_id)
    now = time.monotonic()
    if now - _SWEPT.get(key, -math.inf) < every_s:
        return False
    if len(_SWEPT) >= 4096:
        _SWEPT.clear()  # a server of many studies keeps only recent ones
    _SWEPT[key] = now
    return True


def report(
    session: Session, study: Study, number: int, agent: str, reports: list[StepReport]
) -> ReportAnswer:
    """Store an agent's reports of its trial and renew its lease; whether it is to stop (its
    study ended, or the pruner stops it at one of these steps)."""
    trial = _leased(session, study, number, agent)
    status = queries.heartbeat(session, trial.id, study.id)
    if status != StudyStatus.RUNNING:
        return ReportAnswer(stop=True, reason=_ended(status))
    steps = [(r.step, dict(r.metrics)) for r in reports]
    queries.add_metrics(session, trial.id, steps)
    check = PruningCheck(study.id, number, definition_of(session, study.id, study.created_at), None)
    if check.first_pruned(session, steps) is not None:
        return ReportAnswer(stop=True, reason="pruned")
    return ReportAnswer(stop=False)


def finish(
    session: Session, study: Study, number: int, agent: str, end: FinishCreate
) -> tuple[Trial, list[int]]:
    """End an agent's trial as it says, with its last reports; the trials queued after it,
    to dispatch once committed. A study that ended meanwhile gives the trial its reason, as
    it does a worker's."""
    trial = _leased(session, study, number, agent)
    definition = definition_of(session, study.id, study.created_at)
    reason = None if end.reason is None else cut(end.reason, MESSAGE_CHARS)
    outcome = Outcome(TrialState(end.state), reason, end.values, end.traceback)
    ending = settle(outcome, definition, queries.study_status(session, study.id))
    steps = [(r.step, dict(r.metrics)) for r in end.reports]
    if not write_ending(session, trial.id, steps, ending):
        raise _not_leased(trial, agent)  # found lost between the read and the write
    session.refresh(trial)
    return trial, coordinator.queue_next(session, study.id)


def release(session: Session, study: Study, number: int, agent: str) -> list[int]:
    """Give `agent`'s trial back: queued again as the same trial, its steps dropped, so that
    it runs again at once (on any agent or worker) at no cost of budget or retry, where a
    silent agent's trial waits out its lease and ends `failed: lost`. The trial, to dispatch
    once committed."""
    _leased(session, study, number, agent)
    return queries.requeue_running(session, study.id, worker=AGENT + agent)


@dataclass(frozen=True)
class Upload:
    """What the response streaming an upload says of it, read before its session ends."""

    id: int
    format: str
    size_bytes: int
    content_hash: str


def leased_dataset(session: Session, study: Study, number: int, agent: str, ref: str) -> Upload:
    """An upload of the study's team that `agent`'s trial may read (its `context.dataset`), as
    a worker's trial may; 404 for another team's, as for one that does not exist."""
    _leased(session, study, number, agent)
    found = datasets.upload_for(session, study.id, ref)
    if found is None:
        raise NotFound("dataset")
    return Upload(found.id, found.format, found.size_bytes, found.content_hash)


def dataset_parts(dataset_id: int, size: int) -> Iterator[bytes]:
    """A dataset's content, `DATASET_PART` bytes at a time, each read in a transaction of its
    own: the response streams on after the route's session closed, and never holds it whole."""
    for offset in range(0, size, DATASET_PART):
        with session_scope() as session:
            part = datasets.content_part(session, dataset_id, offset, DATASET_PART)
        yield part


def _leased(session: Session, study: Study, number: int, agent: str) -> Trial:
    """The study's trial `number`, if it runs under `agent`'s lease; 404 / 409 otherwise."""
    trial = queries.trial_by_number(session, study.id, number)
    if trial is None:
        raise NotFound("trial")
    if trial.state != TrialState.RUNNING or trial.worker != AGENT + agent:
        raise _not_leased(trial, agent)
    return trial


def _not_leased(trial: Trial, agent: str) -> Conflict:
    state = trial.state.value + (f": {trial.reason}" if trial.reason else "")
    return Conflict(
        f"agent: trial {trial.number} is not leased to agent {agent!r} (it is {state})", "agent"
    )


def _ended(status: StudyStatus | None) -> str:
    return "timeout" if status == StudyStatus.TIMED_OUT else "cancelled"
