"""The Celery app and its one task. `hpsearch worker` runs this app."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from celery import Celery, bootsteps
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import worker_process_init, worker_ready, worker_shutdown
from celery.worker.consumer.consumer import CONNECTION_ERROR
from kombu import Connection

from hpsearch.db import queries
from hpsearch.db.models import utcnow
from hpsearch.db.outage import Outage
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search.definition import BUILTIN_TRAINER
from hpsearch.worker.engine import kernels
from hpsearch.worker.runner import run_trial
from hpsearch.worker.sweeper import Sweeper, resend_queued

log = logging.getLogger(__name__)

# The broker must not hand a running trial to a second worker before the first is done with it.
VISIBILITY_TIMEOUT_S = 6 * 3600

# A worker takes no trial, and re-sends none, until it is connected again: it tries every few
# seconds, not the up to 30 s kombu waits between attempts by default.
RECONNECT_EVERY_S = 5


class _PromptConnection(Connection):
    """kombu's connection, with attempts to reconnect at most `RECONNECT_EVERY_S` apart."""

    def ensure_connection(self, *args: Any, **kwargs: Any) -> Connection:
        kwargs.setdefault("interval_start", 1)
        kwargs.setdefault("interval_step", 1)
        kwargs.setdefault("interval_max", RECONNECT_EVERY_S)
        return super().ensure_connection(*args, **kwargs)


app = Celery("hpsearch", broker=get_settings().broker_url)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    # A worker waits for its broker as long as it takes (Celery's default gives up after 100
    # attempts, which is minutes at `RECONNECT_EVERY_S`).
    broker_connection_max_retries=None,
    # A running trial talks to PostgreSQL only: losing the broker connection costs it nothing.
    # Cancelling it would throw its work away and, as its claim refuses to run it twice, end it
    # lost and run its config again. Its message stays unacknowledged; if the broker redelivers
    # it (after the visibility timeout, or a restart that kept it), the claim refuses it.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    # Rides out a blip, not an outage: a send that fails leaves its trials due for the next
    # re-send (a reconnection, or the next sweep), so neither a request of the API nor a trial
    # process waits for the broker to come back (40 retries here held a POST for 75 s).
    task_publish_retry_policy={
        "max_retries": 3,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
    },
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
    # Every trial is sent to its trainer's queue (`trainer_queue`); anything sent without one
    # goes to the built-in engine's.
    task_default_queue=f"trainer.{BUILTIN_TRAINER}",
)
app.amqp.Connection = _PromptConnection


class _ReconnectingIsNoError(logging.Filter):
    """Celery logs each failed attempt to reach the broker again as an ERROR. A worker waits a
    broker restart out and then re-sends what it may have lost: that is a WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == CONNECTION_ERROR:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


logging.getLogger("celery.worker.consumer.consumer").addFilter(_ReconnectingIsNoError())


def trainer_queue(trainer: str) -> str:
    """The Celery queue of a trainer's trials: only workers that have the trainer consume it."""
    return f"trainer.{trainer}"


def worker_argv(
    concurrency: int, name: str | None, trainers: Sequence[str] = (BUILTIN_TRAINER,)
) -> list[str]:
    """The arguments of `hpsearch worker`'s Celery worker, consuming the queues of `trainers`.

    Without gossip, mingle and event heartbeats: nothing of hpsearch reads them (workers share
    no state but the database), and each is one more broker consumer that fails noisily when
    the broker restarts. Remote control stays, for an operator's `celery inspect`.
    """
    argv = [
        "worker",
        "--loglevel=INFO",
        f"--concurrency={concurrency}",
        "--prefetch-multiplier=1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--queues={','.join(trainer_queue(t) for t in trainers)}",
    ]
    return [*argv, f"--hostname={name}"] if name else argv


@app.task(name="hpsearch.run_trial")
def run_trial_task(trial_id: int) -> None:
    """Run one trial, then dispatch the trials the coordinator queued after it."""
    CeleryDispatcher().dispatch(run_trial(trial_id))


class CeleryDispatcher:
    """The distributed dispatcher: one Celery task per trial, on the configured broker."""

    def dispatch(self, trial_ids: Sequence[int]) -> None:
        """Send each trial to its trainer's queue; those the broker did not take are left for
        the next re-send."""
        if not trial_ids:
            return
        try:
            with session_scope() as session:
                trainers = queries.trainers_of(session, trial_ids)
        except Exception as exc:  # committed as queued: the sweep sends them once it can
            log.warning(
                "could not route trials %s (%r); the next re-send sends them", trial_ids, exc
            )
            return
        # A trial left out waits for an agent (its study runs on agents alone), or is gone.
        routed = [trial_id for trial_id in trial_ids if trial_id in trainers]
        for i, trial_id in enumerate(routed):
            try:
                run_trial_task.apply_async((trial_id,), queue=trainer_queue(trainers[trial_id]))
            except Exception as exc:  # not only connection errors: kombu's AttributeError too
                BROKER.failed(exc)
                _unsent(routed[i:])
                return
            BROKER.succeeded()

    def shutdown(self) -> None:
        """Nothing to release: the broker's connections close with the process."""


BROKER = Outage("broker", log)


def _unsent(trial_ids: list[int]) -> None:
    # The trials are committed as queued: made due for the next re-send, they go out at the
    # next sweep or when a worker's connection to the broker is back, not minutes later.
    log.info("trials %s not sent: due for the next re-send", trial_ids)
    due = utcnow() - timedelta(seconds=get_settings().requeue_after_s + 1)
    try:
        with session_scope() as session:
            queries.mark_unsent(session, trial_ids, due)
    except Exception as exc:  # the database is away too: the sweep's period still applies
        log.warning("could not mark trials %s unsent (%r)", trial_ids, exc)


def _resend(sent_before: datetime) -> None:
    try:
        resend_queued(CeleryDispatcher().dispatch, sent_before)
    except Exception:  # the database is away: the sweeps send them once it is back
        log.warning("could not re-send the queued trials after a reconnection", exc_info=True)


class ResendOnReconnect(bootsteps.StartStopStep):
    """Re-sends, each time this worker's consumer is connected to the broker again, the queued
    trials sent before the connection was lost: a broker restarted without persistence lost
    their messages, and waiting out `HPSEARCH_REQUEUE_AFTER_S` would stall their studies.

    A consumer's steps are stopped when its connection is lost and started again once it is
    back. Sending twice is harmless (a trial is claimed once), and each trial is re-sent once
    per outage however many workers reconnect (see `resend_queued`).
    """

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.lost_at: datetime | None = None

    def start(self, parent: Any) -> None:
        BROKER.succeeded()  # connected: an outage this process logged is over
        lost_at, self.lost_at = self.lost_at, None
        if lost_at is not None:
            # Off the consumer's thread: it must not wait on the database.
            threading.Thread(target=_resend, args=(lost_at,), name="resend", daemon=True).start()

    def stop(self, parent: Any) -> None:
        # A restart that fails half-way stops the steps again: keep the first loss.
        self.lost_at = self.lost_at or utcnow()


app.steps["consumer"].add(ResendOnReconnect)

_sweepers: list[Sweeper] = []


@worker_ready.connect
def _quiet_cancel_warning(**_: object) -> None:
    # Celery warns at every connection loss that the default of
    # worker_cancel_long_running_tasks_on_connection_loss changes in Celery 6: ours is set.
    # Not at import: setting up its logging, Celery shows all its deprecation warnings again.
    warnings.filterwarnings("ignore", r"\s*In Celery 5\.1 ", CPendingDeprecationWarning)


@worker_ready.connect
def _start_sweeper(**_: object) -> None:
    # In the worker's main process, not in its pool's children: one sweeper per worker.
    _sweepers.append(Sweeper(CeleryDispatcher().dispatch).start())


@worker_process_init.connect
def _load_kernels(**_: object) -> None:
    # As each prefork child starts: numba's compile belongs to no trial's train_seconds.
    kernels.load()


@worker_shutdown.connect
def _stop_sweeper(**_: object) -> None:
    for sweeper in _sweepers:
        sweeper.stop()
