"""`run_trial`: one trial from queued to its terminal state, shared by Celery and the local pool."""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from hpsearch.db import checkpoints, datasets, queries
from hpsearch.db.models import Study, StudyStatus, TrialState
from hpsearch.db.outage import Outage
from hpsearch.db.session import retrying, session_scope, unreachable
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.search.definition import CheckpointsConfig, StudyDefinition
from hpsearch.search.pruners import NoPruner
from hpsearch.trainer import Dataset
from hpsearch.worker import trainers
from hpsearch.worker.engine.config import parse_config
from hpsearch.worker.outcome import Outcome, Steps, Stopper, train_outcome

log = logging.getLogger(__name__)

# Per-epoch metrics are written in batches at most this often, so that fast epochs do not turn
# into one database transaction each.
FLUSH_EVERY_S = 1.0


def worker_name() -> str:
    """This process, as it is recorded on the trials it runs."""
    return worker_name_of(os.getpid())


def worker_name_of(pid: int) -> str:
    """Process `pid` of this machine, as it is recorded on the trials it runs."""
    return f"{_hostname()}:{pid}"


@cache
def _hostname() -> str:
    return socket.gethostname()  # a system call per trial otherwise


def run_trial(trial_id: int, *, url: str | None = None, in_caller: bool = False) -> list[int]:
    """Run a queued trial to exactly one terminal state; return the trials queued after it.

    The trial's end and the trials the coordinator queues in its place are written in one
    transaction; the caller dispatches the returned ids. Runs nothing (and returns []) when
    the trial is not queued any more (another worker claimed it, or a redelivered message
    found it finished): running it again would count it twice.

    `in_caller`: this process is the user's own (`hpsearch.optimize`), never killed for a
    trainer that does not stop.
    """

    def claim(session: Session) -> tuple[queries.Claimed, StudyDefinition] | None:
        if session.get_bind().dialect.name == "postgresql":
            # One UPDATE is atomic on its own: without BEGIN and COMMIT around it, the claim
            # is one round trip to the server instead of three.
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        claimed = queries.claim_trial(session, trial_id, worker_name())
        return (
            None
            if claimed is None
            else (claimed, definition_of(session, claimed.study_id, claimed.study_created_at))
        )

    started = retrying(claim, url)
    if started is None:
        log.info("trial %s is not queued any more; not running it", trial_id)
        return []
    log.info("trial %s: running", trial_id)
    claimed, definition = started
    study_id, number, params = claimed.study_id, claimed.number, claimed.params
    recorder = _Recorder(trial_id, study_id, url, PruningCheck(study_id, number, definition, url))
    stopper = _Stopper(trial_id, recorder, may_kill=not in_caller)
    resume = None
    lineage = claimed.lineage or {}
    if claimed.retry_of is not None or lineage.get("parent") is not None:

        def resume_point(session: Session) -> checkpoints.ResumePoint | None:
            return checkpoints.resume(
                session,
                trial_id,
                study_id=study_id,
                retry_of=claimed.retry_of,
                parent=lineage.get("parent"),
            )

        resume = retrying(resume_point, url)
        if resume is not None:
            log.info(
                "trial %s: resumes trial %s after step %s", trial_id, resume.source, resume.step
            )
    with _HEARTBEATS.beating(trial_id, study_id, url, stopper.study_ended):
        context = _TrialContext(recorder, definition, stopper, claimed.study_created_at)
        context.resume = None if resume is None else resume.content
        context.checkpoint_due.until = lineage.get("until")
        outcome = _train(definition, params, context)
    ending = settle(outcome, definition, recorder.study_status)
    weights = context.weights(ending.state)
    # A population member's final state is where the next generation starts: kept. Only a trial
    # that saved or resumed a state has checkpoints to drop: the others skip those statements.
    drop = not lineage and (context.saved_state or resume is not None)

    def write_end(session: Session) -> None:
        write_ending(session, trial_id, recorder.pending, ending, weights, drop_checkpoints=drop)

    def end_and_queue_next(session: Session) -> list[int]:
        write_end(session)
        return coordinator.queue_next(session, study_id)

    try:
        successors = retrying(end_and_queue_next, url)
    except Exception:
        # The coordinator must not cost the trial its result: write the end alone.
        log.exception("study %s: queueing the trials after %s failed", study_id, trial_id)
        successors = []
        try:
            retrying(write_end, url)
        except Exception:  # e.g. the study was deleted while the trial ran: nothing to keep
            log.exception("trial %s: its end could not be written", trial_id)
    log.info(
        "trial %s: %s%s", trial_id, ending.state.value, f" ({ending.reason})" * bool(ending.reason)
    )
    return successors


class Ending(NamedTuple):
    """A trial's end as it is written: its outcome, and the objective value it ranks by."""

    state: TrialState
    reason: str | None
    values: dict[str, float] | None
    value: float | None
    traceback: str | None


def settle(
    outcome: Outcome, definition: StudyDefinition, study_status: StudyStatus | None
) -> Ending:
    """The end to write: a study that ended while the trial ran gives it its reason, and a
    failed trial keeps the metrics it reached but no objective value (nothing ranks it)."""
    state, reason, values, error_traceback = outcome
    if study_status != StudyStatus.RUNNING:
        timed_out = study_status == StudyStatus.TIMED_OUT
        state = TrialState.FAILED
        reason = coordinator.TIMEOUT_REASON if timed_out else coordinator.CANCELLED_REASON
    failed = state == TrialState.FAILED
    value = values.get(definition.objectives[0].metric) if values and not failed else None
    return Ending(state, reason, values, value, error_traceback)


def write_ending(
    session: Session,
    trial_id: int,
    pending: list[tuple[int, dict[str, float]]],
    ending: Ending,
    weights: bytes | None = None,
    *,
    drop_checkpoints: bool = False,
) -> bool:
    """Write a running trial's last reports, its end and its trained weights, and drop its
    checkpoints if `drop_checkpoints`; False if it was not running any more (e.g. found lost
    meanwhile): then nothing is written."""
    state, reason, values, value, error_traceback = ending
    if not queries.finish_trial(
        session, trial_id, state, reason=reason, values=values, value=value,
        traceback=error_traceback,
    ):  # fmt: skip
        return False
    queries.add_metrics(session, trial_id, pending)
    if drop_checkpoints:
        checkpoints.discard(session, trial_id)
    if weights is not None:
        checkpoints.keep_weights(session, trial_id, weights)
    return True


def _train(definition: StudyDefinition, params: dict[str, Any], context: _TrialContext) -> Outcome:
    """Train one configuration with the study's trainer; every outcome, its errors included,
    becomes a terminal state."""

    def train() -> Mapping[str, float]:
        trainer = trainers.get(definition.trainer)
        context.step_name = trainer.step_name
        config = parse_config(trainer.Config, definition.trial_document(params))
        with context.stopper.running_trainer():
            return trainer.train(config, context)

    return train_outcome(train, context)


_DEFINITIONS: dict[tuple[str, int, datetime], StudyDefinition] = {}


def definition_of(session: Session, study_id: int, created_at: datetime) -> StudyDefinition:
    """A study's parsed definition, read and parsed once per process (it never changes); its
    creation time tells it from an earlier study of the same id (SQLite reuses a deleted one's)."""
    key = (str(session.get_bind().url), study_id, created_at)
    if key not in _DEFINITIONS:
        if len(_DEFINITIONS) >= 256:
            _DEFINITIONS.clear()  # a worker serving many studies keeps only recent ones
        stored = session.get_one(Study, study_id)
        _DEFINITIONS[key] = StudyDefinition.model_validate(stored.definition)
    return _DEFINITIONS[key]


@lru_cache(maxsize=4)
def _dataset(
    ref: str, study_id: int, study_created_at: datetime, url: str | None
) -> Dataset | None:
    # Uploads never change, the study pinned the version a name resolved to, and a worker
    # trains many trials on one: read it once per process. Scoped to the study's team here
    # too, whatever the submission checked: no row of another team's dataset is read, nor
    # named in the trial's reason.
    stored = retrying(lambda session: datasets.content_for(session, study_id, ref), url)
    if stored is None:
        return None
    dataset_id, content, format = stored
    return Dataset(dataset_id, format, content)  # type: ignore[arg-type]


class _TrialContext(Steps):
    """What a trainer gets besides its config (`hpsearch.trainer.Context`)."""

    def __init__(
        self,
        recorder: _Recorder,
        definition: StudyDefinition,
        stopper: _Stopper,
        study_created_at: datetime,
    ) -> None:
        super().__init__()
        self.recorder = recorder
        self.stopper = stopper
        self.study_created_at = study_created_at
        self.seed = definition.seed
        self.checkpoint_due = _CheckpointDue(definition.checkpoints)
        self.save_weights: Callable[[], bytes] | None = None
        self.keeps_weights = definition.checkpoints.keep_weights
        self.saved_state = False  # a checkpoint of this trial is stored

    def report(self, step: int, metrics: Mapping[str, float]) -> bool:
        values = self.check(step, metrics)
        if values is None:
            return True
        with self.stopper.shielded():
            return self.stopped(step, self.recorder.report(step, values))

    def checkpoint(self, step: int, save: Callable[[], bytes]) -> None:
        if not self.checkpoint_due(step):
            return
        with self.stopper.shielded():
            content = self._within_limit(save(), "checkpoint")
            if content is None:
                self.checkpoint_due.off = True
            else:
                self.recorder.flush(checkpoint=(step, content))
                self.saved_state = True

    def keep_weights(self, save: Callable[[], bytes]) -> None:
        self.save_weights = save

    def weights(self, state: TrialState) -> bytes | None:
        """The trained weights to store with the trial's end: a complete trial's, if kept."""
        if state != TrialState.COMPLETE or self.save_weights is None or not self.keeps_weights:
            return None
        return self._within_limit(self.save_weights(), "trained model")

    def _within_limit(self, content: bytes, what: str) -> bytes | None:
        limit = get_settings().max_checkpoint_bytes
        if len(content) <= limit:
            return content
        log.warning(
            "trial %s: its %s is %d bytes, over HPSEARCH_MAX_CHECKPOINT_BYTES (%d): not kept",
            self.recorder.trial_id, what, len(content), limit,
        )  # fmt: skip
        return None

    def dataset(self, ref: str) -> Dataset:
        with self.stopper.shielded():
            found = _dataset(ref, *self._scope())
        if found is None:
            raise LookupError(f"no dataset {ref} in this study's team")
        return found

    def _scope(self) -> tuple[int, datetime, str | None]:
        return self.recorder.study_id, self.study_created_at, self.recorder.url


class _CheckpointDue:
    """Whether a step's checkpoint is due, by the study's `checkpoints` setting."""

    def __init__(self, config: CheckpointsConfig) -> None:
        self.config = config
        self.saved_at = time.monotonic()
        self.off = False
        self.until: int | None = None  # a step whose state is always kept (pbt's last)

    def __call__(self, step: int) -> bool:
        every, seconds = self.config.every_epochs, self.config.every_seconds
        due = (
            step == self.until
            or (every is not None and step % every == 0)
            or (seconds is not None and time.monotonic() - self.saved_at >= seconds)
        )
        if due:
            self.saved_at = time.monotonic()
        return due and not self.off


class PruningCheck:
    """Asks the study's pruner about each epoch, against the other trials' curves.

    The curves are read from the database at most every `FLUSH_EVERY_S`: pruning on curves a
    second old costs nothing, a query per epoch would.
    """

    def __init__(
        self, study_id: int, number: int, definition: StudyDefinition, url: str | None
    ) -> None:
        self.study_id, self.number, self.url = study_id, number, url
        self.pruner = definition.make_pruner()
        self.metric = definition.objectives[0].metric
        self.states = [TrialState.COMPLETE]
        if self.pruner.uses_running_trials:
            self.states += [TrialState.RUNNING, TrialState.PRUNED]
        self.curves: dict[int, dict[int, float]] = {}
        self.read_at = -math.inf

    def __call__(self, step: int, metrics: dict[str, float]) -> bool:
        if not self.applies(metrics):
            return False
        if time.monotonic() - self.read_at >= FLUSH_EVERY_S:
            self.curves = retrying(self._curves, self.url)
            self.read_at = time.monotonic()
        return self.pruner.should_prune(self.number, step, metrics[self.metric], self.curves)

    def first_pruned(
        self, session: Session, reports: list[tuple[int, dict[str, float]]]
    ) -> int | None:
        """The first of these steps the pruner stops the trial at, on the curves as `session`
        reads them now: for the agents' routes, which judge a batch of reports per request."""
        judged = [(step, metrics) for step, metrics in reports if self.applies(metrics)]
        if not judged:
            return None
        curves = self._curves(session)
        return next(
            (
                step
                for step, metrics in judged
                if self.pruner.should_prune(self.number, step, metrics[self.metric], curves)
            ),
            None,
        )

    def applies(self, metrics: dict[str, float]) -> bool:
        """Whether the pruner has anything to judge in these metrics."""
        return not isinstance(self.pruner, NoPruner) and self.metric in metrics

    def _curves(self, session: Session) -> dict[int, dict[int, float]]:
        return queries.objective_curves(session, self.study_id, self.metric, self.states)


class _Recorder:
    """The engine's `report` callback: buffers per-epoch metrics and writes them in batches,
    and answers whether the trial should stop (pruned, or its study cancelled or deleted)."""

    def __init__(self, trial_id: int, study_id: int, url: str | None, prune: PruningCheck) -> None:
        self.trial_id = trial_id
        self.study_id = study_id
        self.url = url
        self.prune = prune
        self.pending: list[tuple[int, dict[str, float]]] = []
        self.last_flush = time.monotonic()
        self.study_status: StudyStatus | None = StudyStatus.RUNNING

    def report(self, step: int, metrics: dict[str, float]) -> bool:
        self.pending.append((step, dict(metrics)))
        if time.monotonic() - self.last_flush >= FLUSH_EVERY_S:
            self.flush()
        return self.study_ended or self.prune(step, metrics)

    def flush(self, checkpoint: tuple[int, bytes] | None = None) -> None:
        """Write the pending metrics, and a checkpoint with them, unless the study ended."""

        def write(session: Session) -> StudyStatus | None:
            status = queries.study_status(session, self.study_id)
            if status == StudyStatus.RUNNING:
                queries.add_metrics(session, self.trial_id, self.pending)
                if checkpoint is not None:
                    checkpoints.keep(session, self.trial_id, *checkpoint)
            return status

        self.study_status = retrying(write, self.url)
        if not self.study_ended:  # written: the end carries only what came after
            self.pending = []
        self.last_flush = time.monotonic()

    @property
    def study_ended(self) -> bool:
        """Whether the study was cancelled, timed out or deleted while the trial ran."""
        return self.study_status != StudyStatus.RUNNING


class _Stopper(Stopper):
    """A worker's `Stopper`: the heartbeat thread reads the study's status with each beat and
    calls `study_ended`. A trainer still running `lost_after_s` after the first interruption
    (stuck in native code, or swallowing it) has its process killed, as Celery's hard time
    limit does, its trial's end written first; unless `may_kill` is False (the process is the
    user's own), where it trains on until it returns.
    """

    def __init__(self, trial_id: int, recorder: _Recorder, *, may_kill: bool = True) -> None:
        super().__init__()
        self.trial_id = trial_id
        self.recorder = recorder
        self.may_kill = may_kill

    def study_ended(self, status: StudyStatus | None, session: Session) -> None:
        """Called by the heartbeat thread with each beat once the study no longer runs."""
        self.recorder.study_status = status
        overdue = (lambda: self._kill(status, session)) if self.may_kill else None
        self.interrupt(overdue, get_settings().lost_after_s)

    def _kill(self, status: StudyStatus | None, session: Session) -> None:
        reason = "timeout" if status == StudyStatus.TIMED_OUT else coordinator.CANCELLED_REASON
        reason += " (its trainer did not stop: its process was killed)"
        queries.finish_trial(session, self.trial_id, TrialState.FAILED, reason=reason)
        session.commit()
        log.error("trial %s: %s", self.trial_id, reason)
        os.kill(os.getpid(), signal.SIGKILL)


class _Heartbeats:
    """Marks this process's running trials alive every `heartbeat_s`, even inside a long epoch.

    One thread per process beats for every trial running in it: starting and joining a thread
    per trial cost about a millisecond of each trial (bench/overhead.py), more than its SQL.
    A trial's last beat is still at most `heartbeat_s` old, its claim counting as the first.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.trials: dict[int, _Beat] = {}
        self.started = False
        self.database = Outage("database (heartbeats)", log)

    @contextmanager
    def beating(
        self, trial_id: int, study_id: int, url: str | None, study_ended: _StudyEnded
    ) -> Iterator[None]:
        """Beat for this trial while inside; `study_ended` is called with each beat once its
        study no longer runs."""
        with self.lock:
            self.trials[trial_id] = _Beat(study_id, url, study_ended)
            if not self.started:
                threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()
                self.started = True
        try:
            yield
        finally:
            with self.lock:
                self.trials.pop(trial_id, None)

    def _beat(self) -> None:
        while True:
            time.sleep(get_settings().heartbeat_s)
            with self.lock:
                running = list(self.trials.items())
            for trial_id, beat in running:
                try:
                    # Untested connection (see `retrying`): a beat lost to a restart is
                    # logged, and the next one connects afresh.
                    with session_scope(beat.url, pre_ping=False) as session:
                        status = queries.heartbeat(session, trial_id, beat.study_id)
                        if status != StudyStatus.RUNNING:
                            beat.study_ended(status, session)
                except Exception as exc:  # a missed beat is not worth killing the trial for
                    if unreachable(exc):  # once per outage, not a trace per beat
                        self.database.failed(exc)
                    else:
                        log.warning("heartbeat of trial %s failed", trial_id, exc_info=True)
                else:
                    self.database.succeeded()


_StudyEnded = Callable[[StudyStatus | None, Session], None]


@dataclass(frozen=True)
class _Beat:
    study_id: int
    url: str | None
    study_ended: _StudyEnded


_HEARTBEATS = _Heartbeats()
# A forked child has none of its parent's threads (and maybe a lock held by one): start afresh.
os.register_at_fork(after_in_child=_HEARTBEATS.__init__)
